-- HNSW off the write path. A chunk is written with in_hnsw false, outside the
-- HNSW index (a partial index over in_hnsw), so INDEX commits at the speed of
-- plain inserts; each worker's indexer then sets in_hnsw in batches, which
-- puts the rows into the graph. Searches scan the rows not yet in the graph
-- exactly (chunks_hnsw_pending_idx finds them), so a READY document is
-- searchable at once and nothing is missed.
ALTER TABLE chunks ADD COLUMN in_hnsw BOOLEAN NOT NULL DEFAULT false;
DROP INDEX chunks_embedding_idx;
UPDATE chunks SET in_hnsw = true;
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops) WHERE in_hnsw;
CREATE INDEX chunks_hnsw_pending_idx ON chunks (id) WHERE NOT in_hnsw;

DROP INDEX chunks_hnsw_pending_idx;
DROP INDEX chunks_embedding_idx;
ALTER TABLE chunks DROP COLUMN in_hnsw;
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops);

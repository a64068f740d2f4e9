-- Ranked keyword search. A RUM index keeps each lexeme's positions and
-- weights, so `ORDER BY tsv <=> query LIMIT k` reads the best k matches
-- from the index instead of ranking every match from the table (a common word
-- matches nearly half the chunks). RUM inserts are slow (generic WAL, no
-- pending list), so the index is off the write path like the HNSW graph: it
-- is partial over the same flag, renamed from in_hnsw to indexed, which a
-- worker's indexer sets. Chunks not yet indexed are found through a GIN index
-- over them alone.
CREATE EXTENSION IF NOT EXISTS rum;
ALTER TABLE chunks RENAME COLUMN in_hnsw TO indexed;
ALTER INDEX chunks_hnsw_pending_idx RENAME TO chunks_pending_idx;
DROP INDEX chunks_tsv_idx;
CREATE INDEX chunks_tsv_idx ON chunks USING rum (tsv rum_tsvector_ops) WHERE indexed;
CREATE INDEX chunks_tsv_pending_idx ON chunks USING gin (tsv) WHERE NOT indexed;

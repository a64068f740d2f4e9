DROP INDEX chunks_tsv_pending_idx;
DROP INDEX chunks_tsv_idx;
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
ALTER INDEX chunks_pending_idx RENAME TO chunks_hnsw_pending_idx;
ALTER TABLE chunks RENAME COLUMN indexed TO in_hnsw;
DROP EXTENSION IF EXISTS rum;

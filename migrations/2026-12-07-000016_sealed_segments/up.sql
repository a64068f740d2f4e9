-- Sealed segments. The HNSW graph and the RUM keyword index were one each,
-- over the chunks a worker's indexer had flagged `indexed`, filled row by
-- row: ~400 chunks/s, folio's real rate under a load that does not stop,
-- while one CREATE INDEX builds the same graph ~10x faster (BENCHMARKS.md,
-- Sustained ingest). Now the chunk table is cut into segments by id, as
-- Lucene cuts its index: a sealed segment [lo, hi) has its own graph and RUM
-- index, partial over that id range and built in one CREATE INDEX
-- CONCURRENTLY by a worker's segment builder (folio_db::models::segment),
-- and segments are merged in tiers in the background. Chunks past the last
-- sealed segment (the open segment) are scanned exactly, and matched through
-- a GIN index over every chunk. A row here is written once its segment's
-- indexes are valid, so searches use only built ones.
CREATE TABLE chunk_segments (
    lo BIGINT PRIMARY KEY,
    hi BIGINT NOT NULL,
    -- Its tier: 0 when sealed from the open segment, one more per merge.
    level INTEGER NOT NULL,
    built_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (lo < hi),
    EXCLUDE USING gist (int8range(lo, hi) WITH &&)
);

-- What searches used until now. The builder seals the chunks already here as
-- one segment when it first runs (a search scans them exactly until then).
DROP INDEX chunks_embedding_idx;
DROP INDEX chunks_tsv_idx;
DROP INDEX chunks_tsv_pending_idx;
DROP INDEX chunks_pending_idx;
ALTER TABLE chunks DROP COLUMN indexed;
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);

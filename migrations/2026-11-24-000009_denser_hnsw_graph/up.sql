-- A denser HNSW graph: 24 links per node (48 on the bottom layer) instead of
-- pgvector's default 16, built with a 128-wide candidate list instead of 64.
-- `hash` vectors sit in a thin band of similarity; at 100,000 chunks the
-- default graph gave recall@10 0.89 (heading queries) / 0.93 (sentences) at
-- ef_search 400, this one 0.97 / 0.99 at ef_search 800 within the 30 ms p95
-- (BENCHMARKS.md, Search). The workers' indexers build it off the write path,
-- so ingestion does not wait for its slower inserts.
DROP INDEX chunks_embedding_idx;
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE indexed;

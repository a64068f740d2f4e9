-- Vectors inline. pgvector's type is stored EXTERNAL: a chunk's 1.5 KB
-- embedding went to the TOAST table, so every exact scan of the chunks not
-- yet in the HNSW graph, and every distance recomputed for a graph hit, read
-- it back through the TOAST index (three buffer reads per row). MAIN keeps it
-- in the row (text, headings and tsvector are compressed or moved out first):
-- an exact scan of 14,420 pending chunks fell from 51 ms to 29 ms (BENCHMARKS.md,
-- Sustained ingest). Only rows written from now on are stored so; a
-- reindex rewrites older ones.
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;

DO $$
DECLARE
    segment_index TEXT;
BEGIN
    FOR segment_index IN SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexname LIKE 'chunks\_seg\_%' LOOP
        EXECUTE format('DROP INDEX %I', segment_index);
    END LOOP;
END $$;
DROP TABLE chunk_segments;
DROP INDEX chunks_tsv_idx;
ALTER TABLE chunks ADD COLUMN indexed BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX chunks_pending_idx ON chunks (id) WHERE NOT indexed;
CREATE INDEX chunks_tsv_pending_idx ON chunks USING gin (tsv) WHERE NOT indexed;
CREATE INDEX chunks_tsv_idx ON chunks USING rum (tsv rum_tsvector_ops) WHERE indexed;
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE indexed;

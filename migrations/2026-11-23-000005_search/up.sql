-- Every chunk says which model made its vector, and the index records the
-- model it is for: vectors of different models are never compared.
ALTER TABLE chunks ADD COLUMN embedding_model TEXT NOT NULL DEFAULT 'folio-hash-v1-384';
ALTER TABLE chunks ALTER COLUMN embedding_model DROP DEFAULT;

-- One row: the embedding model (and dimension) the index is for. Written by
-- the first INDEX and by ReindexDocuments.
CREATE TABLE embedding_index (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Keyword search sees a chunk's headings too: its own (innermost) heading
-- weighted A, the ones above it B, its text D. A search for a section's title
-- then finds that section's chunks before its subsections'. array_to_string is
-- only STABLE in general (element output functions may vary); over text[] it
-- is immutable, which this wrapper declares so a generated column may use it.
CREATE FUNCTION folio_headings(path TEXT[]) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string(path, ' ') $$;
ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', coalesce(section_path[cardinality(section_path)], '')), 'A')
    || setweight(to_tsvector('english', folio_headings(section_path[1:cardinality(section_path) - 1])), 'B')
    || setweight(to_tsvector('english', text), 'D')
) STORED;
CREATE INDEX chunks_tsv_idx ON chunks USING GIN (tsv);

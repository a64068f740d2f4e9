ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;
CREATE INDEX chunks_tsv_idx ON chunks USING GIN (tsv);
DROP FUNCTION folio_headings(TEXT[]);
DROP TABLE embedding_index;
ALTER TABLE chunks DROP COLUMN embedding_model;

ALTER TABLE document_events ALTER COLUMN created_at SET DEFAULT now();

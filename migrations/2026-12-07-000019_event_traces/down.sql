ALTER TABLE document_events DROP COLUMN trace_id;

DROP TABLE chunks;
DROP TABLE document_events;
DROP TABLE documents;

ALTER TABLE users DROP COLUMN quota_documents, DROP COLUMN quota_bytes;

ALTER TABLE documents DROP COLUMN chunking;

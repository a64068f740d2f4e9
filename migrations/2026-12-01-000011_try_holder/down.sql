ALTER TABLE documents DROP COLUMN try_token;

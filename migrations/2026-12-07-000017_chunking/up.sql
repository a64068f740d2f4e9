-- How a document's chunks were made: what they were measured in (words, or an
-- embedding model's tokens and window) and the chunk settings, as
-- folio_models::embed::chunking writes it. ReindexDocuments re-chunks every
-- READY document whose chunking differs from the server's (NULL: chunked
-- before this was recorded).
ALTER TABLE documents ADD COLUMN chunking text;

-- Per-user quotas: NULL means the default (the run-time settings
-- quota_documents and quota_bytes) applies.
ALTER TABLE users ADD COLUMN quota_documents BIGINT, ADD COLUMN quota_bytes BIGINT;

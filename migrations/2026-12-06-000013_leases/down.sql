ALTER TABLE outbox DROP COLUMN try_number;
DROP INDEX documents_lease_expiry;
ALTER TABLE documents DROP COLUMN lease_expires_at, DROP COLUMN lease_worker;

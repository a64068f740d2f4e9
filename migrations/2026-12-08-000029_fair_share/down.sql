DROP INDEX outbox_sent_at;
DROP INDEX documents_queued_by_owner;
ALTER TABLE users DROP COLUMN share_weight;
DROP TABLE fair_share_clock;
DROP TABLE fair_share_owners;
DROP INDEX outbox_sent_by_owner;
DROP INDEX outbox_waiting_document;
DROP INDEX outbox_waiting_by_owner;
ALTER TABLE outbox DROP COLUMN priority, DROP COLUMN document_id, DROP COLUMN owner_id;

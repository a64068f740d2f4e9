-- A document being processed is leased to the worker running it, until an
-- expiry the worker's heartbeat pushes forward. A lease that runs out while no
-- live worker holds the document's lock is taken back: the document is queued
-- again as a new try (see documents::lifecycle::take_back). NULL: no lease (the
-- document is not PROCESSING).
ALTER TABLE documents
    ADD COLUMN lease_worker UUID,
    ADD COLUMN lease_expires_at TIMESTAMPTZ;
-- A document PROCESSING before leases existed: its lease runs out at once, so
-- it is taken back unless a live worker holds it.
UPDATE documents SET lease_expires_at = now() WHERE state = 'PROCESSING';
CREATE INDEX documents_lease_expiry ON documents (lease_expires_at) WHERE lease_expires_at IS NOT NULL;

-- The try number the relay publishes a job with (its attempt header): 1 for a
-- new job, the next try for a document taken back.
ALTER TABLE outbox ADD COLUMN try_number INTEGER NOT NULL DEFAULT 1;

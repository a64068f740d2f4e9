-- Fair share: owned jobs wait in the outbox until the scheduler releases them,
-- by start-time fair queuing over owners (see api-server/src/relay.rs).
ALTER TABLE outbox
    ADD COLUMN owner_id UUID,
    ADD COLUMN document_id UUID,
    -- 0: interactive (the default), 1: bulk. Lower goes first within an owner.
    ADD COLUMN priority SMALLINT NOT NULL DEFAULT 0 CHECK (priority IN (0, 1));
CREATE INDEX outbox_waiting_by_owner ON outbox (owner_id, priority, id)
    WHERE sent_at IS NULL AND owner_id IS NOT NULL;
-- folio's own rows the relay sends at once, found without walking past an
-- import's waiting rows.
CREATE INDEX outbox_unsent_unowned ON outbox (id) WHERE sent_at IS NULL AND owner_id IS NULL;
-- A document's jobs: whether one waits, and its last one's priority.
CREATE INDEX outbox_document ON outbox (document_id, id) WHERE document_id IS NOT NULL;
CREATE INDEX outbox_sent_by_owner ON outbox (owner_id, sent_at)
    WHERE sent_at IS NOT NULL AND owner_id IS NOT NULL;

-- Each owner's place in the schedule: the virtual finish of its last
-- released job, and the release turn it had (ties go to the owner served
-- least recently).
CREATE TABLE fair_share_owners (
    owner_id UUID PRIMARY KEY,
    finish DOUBLE PRECISION NOT NULL DEFAULT 0,
    turn BIGINT NOT NULL DEFAULT 0
);

-- The schedule's virtual time (the start of the job released last) and its
-- release turns; one row.
CREATE TABLE fair_share_clock (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    virtual_time DOUBLE PRECISION NOT NULL DEFAULT 0,
    turn BIGINT NOT NULL DEFAULT 0
);
INSERT INTO fair_share_clock DEFAULT VALUES;

-- An admin-set weight of one account's share (else its role's setting).
ALTER TABLE users ADD COLUMN share_weight INTEGER CHECK (share_weight BETWEEN 1 AND 100);

-- An owner's documents released to the workers and not started yet (ahead
-- of its waiting ones).
CREATE INDEX documents_queued_by_owner ON documents (owner_id) WHERE state = 'QUEUED';

-- The last publish, for the outbox's stall gauge.
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

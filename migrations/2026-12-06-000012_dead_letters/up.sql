-- Jobs the broker dead-lettered (past the process queue's delivery limit, or
-- rejected by a worker), as the workers that read the dead-letter queue found
-- them: kept for operators to list, replay or purge, after the job's document
-- was settled (FAILED, unless it had finished or moved on). The payload is the
-- job message as it was queued. A dead letter delivered twice (an ack lost with
-- a worker) is one row: (job, attempt, reason) is unique.
CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    job_id UUID,
    kind TEXT NOT NULL,
    document_id UUID,
    attempt INTEGER NOT NULL,
    reason TEXT NOT NULL,
    payload BYTEA NOT NULL,
    dead_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dead_letters_once ON dead_letters (job_id, attempt, reason);
CREATE INDEX dead_letters_by_time ON dead_letters (dead_at);

-- pgvector, for the chunk index that the document pipeline writes.
CREATE EXTENSION IF NOT EXISTS vector;

-- Jobs waiting to be published to RabbitMQ. A row is written in the same
-- transaction as the change that needs the job, and marked sent only after the
-- broker confirmed the publish (transactional outbox).
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    job_id UUID NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    publish_attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at TIMESTAMPTZ
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

-- Every worker process that has registered, with its last heartbeat.
CREATE TABLE workers (
    id UUID PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    current_job TEXT,
    jobs_in_flight INTEGER NOT NULL DEFAULT 0,
    stopped_at TIMESTAMPTZ
);
CREATE INDEX workers_last_seen_idx ON workers (last_seen_at DESC, id);

-- Jobs whose effect has committed: the consumer's deduplication record, written
-- in the same transaction as the effect.
CREATE TABLE processed_jobs (
    job_id UUID PRIMARY KEY,
    worker_id UUID NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Round trips requested by SystemService.PingWorkers.
CREATE TABLE pings (
    id UUID PRIMARY KEY,
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    received_at TIMESTAMPTZ,
    worker_id UUID,
    receipts INTEGER NOT NULL DEFAULT 0
);

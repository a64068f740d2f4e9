-- Uploaded documents and their processing state. The row carries the current
-- state; document_events is the log.
CREATE TABLE documents (
    id UUID PRIMARY KEY,
    owner_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    content_type TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('text', 'markdown', 'html', 'pdf', 'docx')),
    labels TEXT[] NOT NULL DEFAULT '{}',
    size_bytes BIGINT NOT NULL,
    sha256 BYTEA NOT NULL,
    blob_key TEXT NOT NULL,
    idempotency_key TEXT,
    state TEXT NOT NULL CHECK (state IN ('QUEUED', 'PROCESSING', 'RETRY_WAIT', 'READY', 'FAILED', 'CANCELLED')),
    stage TEXT,
    -- The processing attempt (RetryDocument starts a new one) and, within it,
    -- the delivery attempt of its job (transient failures retry up to max).
    attempt INTEGER NOT NULL DEFAULT 1,
    try_number INTEGER NOT NULL DEFAULT 0,
    max_tries INTEGER NOT NULL DEFAULT 1,
    next_retry_at TIMESTAMPTZ,
    error_code TEXT,
    error_message TEXT,
    will_retry BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    pages INTEGER,
    characters BIGINT,
    chunk_count INTEGER,
    -- Milliseconds per stage of the last attempt: {"PARSE": 12, ...}.
    stage_ms JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX documents_owner_sha_idx ON documents (owner_id, sha256);
CREATE UNIQUE INDEX documents_owner_idempotency_idx ON documents (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX documents_owner_created_idx ON documents (owner_id, created_at DESC, id DESC);
CREATE INDEX documents_created_idx ON documents (created_at DESC, id DESC);
CREATE INDEX documents_labels_idx ON documents USING GIN (labels);

-- The progress log; its id is the stream cursor of WatchDocument.
CREATE TABLE document_events (
    id BIGSERIAL PRIMARY KEY,
    document_id UUID NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    owner_id UUID NOT NULL,
    attempt INTEGER NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('STORE', 'PARSE', 'CHUNK', 'EMBED', 'INDEX')),
    kind TEXT NOT NULL CHECK (kind IN ('STARTED', 'PROGRESS', 'COMPLETED', 'FAILED', 'RETRY_SCHEDULED', 'CANCELLED')),
    percent INTEGER NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    details JSONB NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX document_events_document_idx ON document_events (document_id, id);
CREATE INDEX document_events_owner_idx ON document_events (owner_id, id);

-- Indexed chunks: text with its place in the document, a 384-dimension
-- embedding (HNSW, cosine) and an English tsvector (GIN) for keyword search.
CREATE TABLE chunks (
    id BIGSERIAL PRIMARY KEY,
    document_id UUID NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    section_path TEXT[] NOT NULL DEFAULT '{}',
    page_start INTEGER,
    page_end INTEGER,
    token_count INTEGER NOT NULL,
    embedding vector(384) NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv_idx ON chunks USING GIN (tsv);

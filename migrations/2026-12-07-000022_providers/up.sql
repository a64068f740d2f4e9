-- The embedding and reranking providers an admin chose at run time,
-- overriding the environment's (FOLIO_EMBEDDER, FOLIO_RERANKER and their
-- URL, model and key). Every api-server and worker rereads them. The API key
-- is never returned by the API, only whether one is set.
CREATE TABLE providers (
    role TEXT PRIMARY KEY CHECK (role IN ('embedder', 'reranker')),
    kind TEXT NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    api_key TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by UUID REFERENCES users (id) ON DELETE SET NULL
);

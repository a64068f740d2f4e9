-- External services folio depends on, registered by an admin (or, for the
-- configured model servers, by the api-server at start), and what the last
-- check of each found. Every api-server checks them on its own schedule and
-- writes what it found; `changed_at` moves only when up/down flips.
CREATE TABLE services (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    automatic BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    up BOOLEAN,
    latency_ms INTEGER,
    error TEXT,
    checked_at TIMESTAMPTZ,
    changed_at TIMESTAMPTZ
);

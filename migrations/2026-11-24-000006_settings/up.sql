-- Settings an admin changes at run time (SystemService.UpdateSettings). A row
-- overrides the value the environment gives; without a row the environment's
-- value (or the built-in default) applies. Every api-server reads this table
-- every FOLIO_SETTINGS_REFRESH_MS.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by UUID REFERENCES users (id) ON DELETE SET NULL
);

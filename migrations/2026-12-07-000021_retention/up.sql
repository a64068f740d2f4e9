-- Retention by label: how long documents carrying a label keep their original
-- bytes and themselves, overriding the settings retention_original_days and
-- retention_document_days for them. NULL follows the setting; 0 keeps for
-- ever. Where several of a document's labels have a rule, the longest period
-- applies (a rule that keeps for ever wins).
CREATE TABLE retention_rules (
    label TEXT PRIMARY KEY,
    original_days INTEGER CHECK (original_days >= 0),
    document_days INTEGER CHECK (document_days >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by UUID REFERENCES users (id) ON DELETE SET NULL
);

-- Groups of accounts, and read access to documents shared with an account or
-- a group: one document, or every document of one owner carrying a label
-- (those labelled later included). Who may read a document is decided in SQL
-- from these rows (folio_db::models::share::SHARED), so these indexes serve
-- every read path: a document's shares, an owner's label shares, a grantee's
-- shares and an account's groups.
CREATE TABLE groups (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX groups_name_key ON groups (lower(name));

CREATE TABLE group_members (
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id, group_id);

CREATE TABLE shares (
    id UUID PRIMARY KEY,
    -- Whose documents are shared: the document's owner, or the owner whose
    -- documents carrying `label` are.
    owner_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- What: one document, or a label.
    document_id UUID REFERENCES documents (id) ON DELETE CASCADE,
    label TEXT,
    -- With whom: an account, or a group.
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    group_id UUID REFERENCES groups (id) ON DELETE CASCADE,
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((document_id IS NULL) <> (label IS NULL)),
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
-- One share per what and whom: sharing again finds the existing row.
CREATE UNIQUE INDEX shares_once_idx ON shares (owner_id, document_id, label, user_id, group_id) NULLS NOT DISTINCT;
CREATE INDEX shares_document_idx ON shares (document_id) WHERE document_id IS NOT NULL;
CREATE INDEX shares_label_idx ON shares (owner_id, label) WHERE label IS NOT NULL;
CREATE INDEX shares_user_idx ON shares (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX shares_group_idx ON shares (group_id) WHERE group_id IS NOT NULL;

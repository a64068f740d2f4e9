-- Second factors: a TOTP secret per account (sealed, never in clear), its
-- backup codes (hashed), and the challenges of logins waiting for a code.
ALTER TABLE users ADD COLUMN mfa_enabled BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE totp_secrets (
    user_id UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The base32 secret sealed under FOLIO_SECRET_KEYS (PASETO v4.local,
    -- bound to the account's id).
    secret_sealed TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Null while enrolling: a first valid code confirms it, and only then
    -- does it guard logins (users.mfa_enabled, set in the same transaction).
    confirmed_at TIMESTAMPTZ,
    -- The last time step a code was accepted for: a code of this step or an
    -- earlier one is refused, so each code works once.
    last_step BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE backup_codes (
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the code (80 random bits), as for refresh tokens.
    code_hash BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    -- SHA-256 of the challenge handed to the client.
    token_hash BYTEA PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    -- Wrong codes so far; at FOLIO_MFA_ATTEMPTS the challenge is deleted.
    attempts INT NOT NULL DEFAULT 0
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);

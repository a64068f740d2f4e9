-- Email: whether an account proved its address, the single-use tokens of
-- verification and password-reset emails (hashed), and the outbox of emails
-- still to send.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;
-- Accounts from before verification existed count as verified.
UPDATE users SET email_verified_at = created_at;

CREATE TABLE email_tokens (
    -- SHA-256 of the token the email carries.
    token_hash BYTEA PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- Written in the transaction of what an email announces; every api-server's
-- sender claims due rows (FOR UPDATE SKIP LOCKED), sends them and deletes
-- them (a body may hold a token, so nothing sent is kept).
CREATE TABLE email_outbox (
    id BIGSERIAL PRIMARY KEY,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at, id);

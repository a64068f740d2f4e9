-- What ListSessions shows of a session: when it last took a token (login or
-- refresh), and the client's address and user agent at that moment.
ALTER TABLE sessions
    ADD COLUMN last_used_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN peer TEXT NOT NULL DEFAULT '',
    ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';

ALTER TABLE sessions DROP COLUMN last_used_at, DROP COLUMN peer, DROP COLUMN user_agent;

-- An event's time is when it was written, not when its transaction began: the
-- append is the last statement of its transaction, so this is within a commit
-- of when watchers can see it (the figure the watch latency is measured from).
ALTER TABLE document_events ALTER COLUMN created_at SET DEFAULT clock_timestamp();

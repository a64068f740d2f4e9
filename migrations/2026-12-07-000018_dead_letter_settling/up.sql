-- What an operator did with a dead letter: replayed it (its document queued
-- again as a new attempt, or its job published again) or purged it (set aside
-- for good; its document stays FAILED). A letter with neither is pending:
-- ListDeadLetters shows it and Replay/PurgeDeadLetters may take it, once.
ALTER TABLE dead_letters
    ADD COLUMN replayed_at TIMESTAMPTZ,
    ADD COLUMN purged_at TIMESTAMPTZ,
    ADD COLUMN settled_by UUID;
CREATE INDEX dead_letters_pending ON dead_letters (id) WHERE replayed_at IS NULL AND purged_at IS NULL;

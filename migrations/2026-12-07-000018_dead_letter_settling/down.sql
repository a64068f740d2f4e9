DROP INDEX dead_letters_pending;
ALTER TABLE dead_letters DROP COLUMN replayed_at, DROP COLUMN purged_at, DROP COLUMN settled_by;

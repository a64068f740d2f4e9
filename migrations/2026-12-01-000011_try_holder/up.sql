-- The try that holds a PROCESSING document: a token drawn per delivery and set
-- by the lifecycle's start-try transition. Every later write of that try (stage
-- done, ready, retry, fail) compares it, so a duplicate or stale delivery of the
-- same job never moves a document another delivery is working on. Nullable and
-- unused by older code, so servers still running the previous version go on.
ALTER TABLE documents ADD COLUMN try_token UUID;

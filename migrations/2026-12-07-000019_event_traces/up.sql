-- The trace id (W3C, 32 hex digits) of the call or job that wrote each event:
-- an upload's events, in the api-server and in any worker, share the trace
-- of the call that uploaded it, and logs carry the same id. NULL for events
-- written before this migration or outside a trace.
ALTER TABLE document_events ADD COLUMN trace_id TEXT;

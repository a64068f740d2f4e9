-- The settled horizon of the event log in one round trip (it took four:
-- BEGIN, read the sequence, take the append lock, COMMIT). It reads the last
-- event id drawn, then takes the append lock exclusively until the end of the
-- caller's transaction (called on its own, an instant), which waits for every
-- append holding it shared: each id up to the one read was drawn under such a
-- hold, so none of them can still commit once this returns.
CREATE FUNCTION folio_settled_event_id(append_lock BIGINT) RETURNS BIGINT
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    drawn BIGINT;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO drawn FROM document_events_id_seq;
    PERFORM pg_advisory_xact_lock(append_lock);
    RETURN drawn;
END
$$;

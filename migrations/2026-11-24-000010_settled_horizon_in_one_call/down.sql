DROP FUNCTION folio_settled_event_id(BIGINT);

//! The lease of a document being processed: renewed by its worker's
//! heartbeat, taken back once it runs out while no live worker holds the
//! document (see "The lease" in the module above).

use super::{
    writes::{Locked, apply_at_current_stage, failed_try, lock_key},
    *,
};

/// Pushes forward every lease `worker` holds (its heartbeat calls this).
pub async fn renew_leases(conn: &mut AsyncPgConnection, worker: Uuid, ttl: std::time::Duration) -> diesel::QueryResult<usize> {
    document::renew_leases(conn, worker, ttl).await
}

/// Documents whose lease has run out, for [`take_back`].
pub async fn expired_leases(conn: &mut AsyncPgConnection, limit: i64) -> diesel::QueryResult<Vec<Uuid>> {
    document::expired_leases(conn, limit).await
}

/// Takes back a document whose lease ran out: queued again as the next try
/// (its job in the outbox), or FAILED with WORKER_LOST when the lost try was
/// its last. Runs inside the caller's transaction; None when a live worker
/// holds the document's lock (otherwise the lock is taken until the
/// transaction ends, so no try starts meanwhile).
pub async fn take_back(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<Moved>, LifecycleError> {
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<BigInt, _>(lock_key(id))
        .get_result(conn)
        .await?;
    if !locked.locked {
        return Ok(None);
    }
    let Some(found) = document::find(conn, id).await? else {
        return Err(LifecycleError::NotFound(id));
    };
    let lost = found_try(&found);
    let expected = Expected {
        states: vec![Processing],
        attempt: Some(lost.attempt),
        try_at_most: Some(lost.number),
        held_by: found.try_token,
        lease_expired: true,
        ..Default::default()
    };
    let expired = found.lease_expires_at.map(|at| at.to_rfc3339()).unwrap_or_default();
    let message = format!(
        "the worker running try {} of {} stopped (its lease ran out at {expired})",
        lost.number, lost.max
    );
    let details = serde_json::json!({
        "try": lost.number,
        "max_tries": lost.max,
        "lease_worker": found.lease_worker,
        "lease_expired_at": expired,
        "error_code": "WORKER_LOST",
    });
    let last = lost.number >= lost.max;
    let (transition, change, kind, note) = if last {
        let change = StateChange {
            next_retry_at: Some(None),
            will_retry: Some(false),
            completed_at: Some(Some(Utc::now())),
            ..failed_try(Failed, &lost, "WORKER_LOST", &message)
        };
        let note = Note {
            percent: 100,
            message: format!("{message}, and it was the last try"),
            details,
        };
        (Transition::Fail, change, EventKind::Failed, note)
    } else {
        let change = StateChange {
            state: Some(Queued),
            try_token: Some(None),
            ..Default::default()
        };
        let note = Note {
            percent: 10,
            message: format!("{message}; queued again as try {}", lost.number + 1),
            details,
        };
        (Transition::TakeBack, change, EventKind::RetryScheduled, note)
    };
    let moved = apply_at_current_stage(conn, id, transition, &expected, &change, kind, note).await?;
    if !last {
        let owned = Owned {
            owner_id: moved.document.owner_id,
            document_id: id,
            priority: None,
        };
        outbox::enqueue_owned(conn, &EncodedJob::process_document(id, lost.attempt), owned, lost.number + 1).await?;
    }
    Ok(Some(moved))
}

/// The try a document records (its token drawn by the delivery that started
/// it).
fn found_try(found: &Document) -> Try {
    Try {
        attempt: found.attempt,
        number: found.try_number,
        max: found.max_tries,
        token: found.try_token.unwrap_or_default(),
    }
}

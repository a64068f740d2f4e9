//! The transitions as guarded writes: each one UPDATE whose WHERE clause is
//! its guard (see the table in the module above), then its event.

use super::*;

/// The advisory-lock key of a document (the low 64 bits of its id).
pub(super) fn lock_key(id: Uuid) -> i64 {
    id.as_u64_pair().1 as i64
}

#[derive(QueryableByName)]
pub(super) struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub(super) locked: bool,
}

/// Takes the document's session-level advisory lock on `conn` if it is free:
/// the right to start or take over a try. A worker holds it while it runs the
/// document; it goes when [`unlock`] is called or the connection closes.
pub async fn try_lock(conn: &mut AsyncPgConnection, id: Uuid) -> diesel::QueryResult<bool> {
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(lock_key(id))
        .get_result(conn)
        .await?;
    Ok(locked.locked)
}

/// Releases what [`try_lock`] took.
pub async fn unlock(conn: &mut AsyncPgConnection, id: Uuid) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(lock_key(id))
        .execute(conn)
        .await
        .map(drop)
}

/// Creates the document QUEUED with its first job in the outbox. None when
/// the owner already has the same bytes or idempotency key (nothing written).
pub async fn store(conn: &mut AsyncPgConnection, new: NewDocument, note: Note) -> Result<Option<Moved>, LifecycleError> {
    let priority = new.priority;
    let row = new.into_row();
    if !document::insert(conn, &row).await? {
        return Ok(None);
    }
    let owned = Owned {
        owner_id: row.owner_id,
        document_id: row.id,
        priority: Some(priority),
    };
    outbox::enqueue_owned(conn, &EncodedJob::process_document(row.id, row.attempt), owned, 1).await?;
    let event = append(conn, &row, Stage::Store, EventKind::Completed, note).await?;
    Ok(Some(Moved {
        document: row,
        event: Some(event),
    }))
}

/// A worker starts (or, holding the document's lock, takes over) try `at`,
/// leasing the document to itself for `lease.ttl`.
pub async fn start_try(conn: &mut AsyncPgConnection, id: Uuid, at: &Try, lease: &Lease) -> Result<Moved, LifecycleError> {
    let expected = Expected {
        states: Transition::StartTry.from().to_vec(),
        attempt: Some(at.attempt),
        try_at_most: Some(at.number),
        cancel_requested: Some(false),
        ..Default::default()
    };
    let change = StateChange {
        state: Some(Processing),
        stage: Some(Some(Stage::Parse)),
        try_number: Some(at.number),
        max_tries: Some(at.max),
        next_retry_at: Some(None),
        will_retry: Some(false),
        error_code: Some(None),
        error_message: Some(None),
        try_token: Some(Some(at.token)),
        lease_worker: Some(Some(lease.worker)),
        lease_expires_at: Some(Some(Utc::now() + lease.ttl)),
        ..Default::default()
    };
    let note = Note {
        percent: 10,
        message: format!("try {} of {}", at.number, at.max),
        details: serde_json::json!({ "try": at.number, "max_tries": at.max }),
    };
    apply(
        conn,
        id,
        Transition::StartTry,
        &expected,
        &change,
        Some((Stage::Parse, EventKind::Started, note)),
    )
    .await
}

/// What the stage and progress writes of a try expect.
fn held(at: &Try) -> Expected {
    Expected {
        states: vec![Processing],
        attempt: Some(at.attempt),
        held_by: Some(at.token),
        ..Default::default()
    }
}

/// A stage of try `at` finished; its results go on the document.
pub async fn stage_done(conn: &mut AsyncPgConnection, id: Uuid, at: &Try, done: StageDone) -> Result<Moved, LifecycleError> {
    let change = StateChange {
        stage: Some(Some(done.stage)),
        title: done.title,
        pages: done.pages,
        characters: done.characters,
        stage_ms: Some(done.stage_ms),
        ..Default::default()
    };
    let event = (done.stage, EventKind::Completed, done.note);
    apply(conn, id, Transition::StageDone, &held(at), &change, Some(event)).await
}

/// Try `at` reports progress within `stage`.
pub async fn progress(conn: &mut AsyncPgConnection, id: Uuid, at: &Try, stage: Stage, note: Note) -> Result<Moved, LifecycleError> {
    let event = (stage, EventKind::Progress, note);
    apply(conn, id, Transition::Progress, &held(at), &StateChange::default(), Some(event)).await
}

/// Try `at` indexed `chunks` chunks: the document is READY. Write the chunks
/// in the same transaction first; a refusal rolls them back with it.
pub async fn ready(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    at: &Try,
    chunked: &Chunked,
    stage_ms: serde_json::Value,
    note: Note,
) -> Result<Moved, LifecycleError> {
    let expected = Expected {
        cancel_requested: Some(false),
        ..held(at)
    };
    let change = StateChange {
        state: Some(Ready),
        stage: Some(Some(Stage::Index)),
        chunk_count: Some(Some(chunked.count)),
        chunking: Some(Some(chunked.chunking.clone())),
        stage_ms: Some(stage_ms),
        completed_at: Some(Some(Utc::now())),
        try_token: Some(None),
        ..Default::default()
    };
    apply(
        conn,
        id,
        Transition::Ready,
        &expected,
        &change,
        Some((Stage::Index, EventKind::Completed, note)),
    )
    .await
}

/// On what right a failed try is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// The delivery holds the document's advisory lock: any earlier holder is
    /// gone, so a PROCESSING document is its to settle (even one an earlier,
    /// crashed try started and this one failed before taking over); one no
    /// try holds must not have reached this try's number yet (so the same
    /// failure is never recorded twice).
    Lock,
    /// The delivery does not hold the lock (it failed before taking it): a
    /// PROCESSING document must be held by this very try, and a document no
    /// try holds must not have reached this try's number yet.
    Token,
}

/// What a failing try's writes expect (see [`Holding`]).
fn settling(at: &Try, holding: Holding) -> Expected {
    match holding {
        Holding::Lock => Expected {
            states: vec![Queued, RetryWait, Processing],
            attempt: Some(at.attempt),
            try_at_most: Some(at.number),
            unstarted_before: Some(at.number),
            ..Default::default()
        },
        Holding::Token => Expected {
            states: vec![Queued, RetryWait, Processing],
            attempt: Some(at.attempt),
            held_by: Some(at.token),
            unstarted_before: Some(at.number),
            ..Default::default()
        },
    }
}

/// What a failed try records, whether another follows or not: the try, the
/// error, and that no try holds the document any more.
pub(super) fn failed_try(state: State, at: &Try, code: &str, message: &str) -> StateChange {
    StateChange {
        state: Some(state),
        try_number: Some(at.number),
        max_tries: Some(at.max),
        error_code: Some(Some(code.into())),
        error_message: Some(Some(message.into())),
        try_token: Some(None),
        ..Default::default()
    }
}

/// Try `at` failed transiently and the next one is scheduled.
pub async fn schedule_retry(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    at: &Try,
    holding: Holding,
    retry: RetryScheduled,
) -> Result<Moved, LifecycleError> {
    let next = retry.next_at.to_rfc3339();
    let change = StateChange {
        next_retry_at: Some(Some(retry.next_at)),
        will_retry: Some(true),
        ..failed_try(RetryWait, at, "UNAVAILABLE", &retry.message)
    };
    let note = Note {
        percent: 10,
        message: format!("try {} of {} failed: {}; retrying at {next}", at.number, at.max, retry.message),
        details: serde_json::json!({ "try": at.number, "max_tries": at.max, "next_retry_at": next, "error_code": "UNAVAILABLE" }),
    };
    apply_at_current_stage(
        conn,
        id,
        Transition::ScheduleRetry,
        &settling(at, holding),
        &change,
        EventKind::RetryScheduled,
        note,
    )
    .await
}

/// Try `at` failed for good (a permanent error, or its last try).
pub async fn fail(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    at: &Try,
    holding: Holding,
    code: &str,
    message: &str,
) -> Result<Moved, LifecycleError> {
    let change = StateChange {
        next_retry_at: Some(None),
        will_retry: Some(false),
        completed_at: Some(Some(Utc::now())),
        ..failed_try(Failed, at, code, message)
    };
    let note = Note {
        percent: 100,
        message: format!("failed ({code}): {message}"),
        details: serde_json::json!({ "try": at.number, "max_tries": at.max, "error_code": code }),
    };
    apply_at_current_stage(conn, id, Transition::Fail, &settling(at, holding), &change, EventKind::Failed, note).await
}

/// The owner cancels: a document no try is running is CANCELLED at once; a
/// PROCESSING one gets the cancel flag and its worker stops at its next check
/// (`cancelled`). Cancelling a CANCELLED document again returns it as it is;
/// READY and FAILED documents are refused.
pub async fn cancel(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Moved, LifecycleError> {
    let now = Expected {
        states: vec![Queued, RetryWait],
        ..Default::default()
    };
    let change = StateChange {
        state: Some(Cancelled),
        cancel_requested: Some(true),
        will_retry: Some(false),
        next_retry_at: Some(None),
        completed_at: Some(Some(Utc::now())),
        try_token: Some(None),
        ..Default::default()
    };
    let note = Note {
        percent: 100,
        message: "cancelled before processing started".into(),
        details: serde_json::json!({}),
    };
    match apply_at_current_stage(conn, id, Transition::Cancelled, &now, &change, EventKind::Cancelled, note).await {
        Err(LifecycleError::Refused {
            found: Found { state: Processing, .. },
            ..
        }) => {}
        Err(LifecycleError::Refused {
            found: Found { state: Cancelled, .. },
            ..
        }) => {
            let document = document::find(conn, id).await?.ok_or(LifecycleError::NotFound(id))?;
            return Ok(Moved { document, event: None });
        }
        other => return other,
    }
    let processing = Expected {
        states: vec![Processing],
        ..Default::default()
    };
    let flag = StateChange {
        cancel_requested: Some(true),
        ..Default::default()
    };
    apply(conn, id, Transition::CancelRequested, &processing, &flag, None).await
}

/// The worker holding the document's lock stops attempt `attempt` because its
/// owner asked: CANCELLED. Remove the partial results in the same transaction.
pub async fn cancelled(conn: &mut AsyncPgConnection, id: Uuid, attempt: i32) -> Result<Moved, LifecycleError> {
    let expected = Expected {
        states: vec![Queued, RetryWait, Processing],
        attempt: Some(attempt),
        cancel_requested: Some(true),
        ..Default::default()
    };
    let change = StateChange {
        state: Some(Cancelled),
        will_retry: Some(false),
        completed_at: Some(Some(Utc::now())),
        try_token: Some(None),
        ..Default::default()
    };
    let note = Note {
        percent: 100,
        message: "cancelled; partial results removed".into(),
        details: serde_json::json!({}),
    };
    apply_at_current_stage(conn, id, Transition::Cancelled, &expected, &change, EventKind::Cancelled, note).await
}

/// The owner retries a FAILED or CANCELLED document: QUEUED as the next
/// attempt, with its job in the outbox.
pub async fn retry_requested(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Moved, LifecycleError> {
    queued_again(
        conn,
        id,
        Transition::RetryRequested.from(),
        "queued again",
        Some(Priority::Interactive),
    )
    .await
}

/// An operator replays the dead letter of a FAILED document: as
/// [`retry_requested`], from FAILED only, and its event says why.
pub async fn replayed(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Moved, LifecycleError> {
    queued_again(conn, id, &[Failed], "replayed from the dead letters: queued again", None).await
}

/// The RetryRequested transition from one of `from`, its event's message
/// beginning with `why`, the job at `priority` (None: as its last one).
async fn queued_again(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    from: &[State],
    why: &str,
    priority: Option<Priority>,
) -> Result<Moved, LifecycleError> {
    let current = document::find(conn, id).await?.ok_or(LifecycleError::NotFound(id))?;
    let attempt = current.attempt + 1;
    let expected = Expected {
        states: from.to_vec(),
        attempt: Some(current.attempt),
        // The new attempt parses the original again.
        original_kept: true,
        ..Default::default()
    };
    let change = StateChange {
        state: Some(Queued),
        stage: Some(Some(Stage::Store)),
        attempt: Some(attempt),
        try_number: Some(0),
        next_retry_at: Some(None),
        error_code: Some(None),
        error_message: Some(None),
        will_retry: Some(false),
        cancel_requested: Some(false),
        stage_ms: Some(serde_json::json!({})),
        completed_at: Some(None),
        try_token: Some(None),
        ..Default::default()
    };
    let moved = apply(conn, id, Transition::RetryRequested, &expected, &change, None).await?;
    let owned = Owned {
        owner_id: moved.document.owner_id,
        document_id: id,
        priority,
    };
    outbox::enqueue_owned(conn, &EncodedJob::process_document(id, attempt), owned, 1).await?;
    let note = Note {
        percent: 5,
        message: format!("{why} as attempt {attempt}"),
        details: serde_json::json!({ "attempt": attempt }),
    };
    let event = append(conn, &moved.document, Stage::Store, EventKind::Progress, note).await?;
    Ok(Moved {
        event: Some(event),
        ..moved
    })
}

/// A READY document is queued for re-embedding with `model`.
pub async fn reindex_queued(conn: &mut AsyncPgConnection, id: Uuid, model: &str) -> Result<Moved, LifecycleError> {
    let expected = Expected {
        states: vec![Ready],
        ..Default::default()
    };
    let moved = apply(conn, id, Transition::ReindexQueued, &expected, &StateChange::default(), None).await?;
    let owned = Owned {
        owner_id: moved.document.owner_id,
        document_id: id,
        priority: Some(Priority::Bulk),
    };
    outbox::enqueue_owned(conn, &EncodedJob::reindex_document(id, model), owned, 1).await?;
    let note = Note {
        percent: 0,
        message: format!("queued for re-embedding with {model}"),
        details: serde_json::json!({ "model": model, "reindex": true }),
    };
    let event = append(conn, &moved.document, Stage::Embed, EventKind::Started, note).await?;
    Ok(Moved {
        event: Some(event),
        ..moved
    })
}

/// A READY document's chunks were made again and re-embedded (written in
/// the same transaction first; a refusal rolls them back).
pub async fn reindexed(conn: &mut AsyncPgConnection, id: Uuid, chunked: &Chunked, note: Note) -> Result<Moved, LifecycleError> {
    let expected = Expected {
        states: vec![Ready],
        ..Default::default()
    };
    let change = StateChange {
        chunk_count: Some(Some(chunked.count)),
        chunking: Some(Some(chunked.chunking.clone())),
        ..Default::default()
    };
    let event = (Stage::Index, EventKind::Completed, note);
    apply(conn, id, Transition::Reindexed, &expected, &change, Some(event)).await
}

/// Retention deleted the original bytes of a document done with processing
/// (kept `days` days); its text and chunks stay. The blob is the caller's to
/// delete after the commit (`moved.document` no longer names it: the caller
/// keeps the key it read).
pub async fn original_deleted(conn: &mut AsyncPgConnection, id: Uuid, days: i32) -> Result<Moved, LifecycleError> {
    let expected = Expected {
        states: Transition::OriginalDeleted.from().to_vec(),
        original_kept: true,
        ..Default::default()
    };
    let change = StateChange {
        blob_key: Some(String::new()),
        ..Default::default()
    };
    let moved = apply(conn, id, Transition::OriginalDeleted, &expected, &change, None).await?;
    let note = Note {
        percent: 100,
        message: format!("original deleted by the retention policy (originals kept {days} days); its text and chunks stay searchable"),
        details: serde_json::json!({ "retention": "original", "days": days }),
    };
    let event = append(conn, &moved.document, Stage::Store, EventKind::Progress, note).await?;
    Ok(Moved {
        event: Some(event),
        ..moved
    })
}

/// Removes the document, its chunks and its events, in any state: a worker
/// still on it finds it gone at its next write. Returns what was removed (its
/// blobs are the caller's to delete after the commit).
pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Document, LifecycleError> {
    document::delete(conn, id).await?.ok_or(LifecycleError::NotFound(id))
}

/// The guarded update and, when `event` is given, its event.
async fn apply(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    transition: Transition,
    expected: &Expected,
    change: &StateChange,
    event: Option<(Stage, EventKind, Note)>,
) -> Result<Moved, LifecycleError> {
    debug_assert!(expected.states.iter().all(|s| transition.leaves(*s)));
    debug_assert!(change.state.is_none() || expected.states.iter().all(|s| change.state == transition.to(*s)));
    // Leaving PROCESSING ends the try's lease.
    let ending_lease;
    let change = match change.state {
        Some(state) if state != Processing => {
            ending_lease = StateChange {
                lease_worker: Some(None),
                lease_expires_at: Some(None),
                ..change.clone()
            };
            &ending_lease
        }
        _ => change,
    };
    let Some(document) = document::update_if(conn, id, expected, change).await? else {
        return Err(refusal(conn, id, transition).await);
    };
    let event = match event {
        Some((stage, kind, note)) => Some(append(conn, &document, stage, kind, note).await?),
        None => None,
    };
    Ok(Moved { document, event })
}

/// [`apply`] with the event at the stage the document is at.
pub(super) async fn apply_at_current_stage(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    transition: Transition,
    expected: &Expected,
    change: &StateChange,
    kind: EventKind,
    note: Note,
) -> Result<Moved, LifecycleError> {
    let moved = apply(conn, id, transition, expected, change, None).await?;
    let stage = moved.document.stage.unwrap_or(Stage::Store);
    let event = append(conn, &moved.document, stage, kind, note).await?;
    Ok(Moved {
        event: Some(event),
        ..moved
    })
}

/// Why a guarded update matched no row.
pub(super) async fn refusal(conn: &mut AsyncPgConnection, id: Uuid, transition: Transition) -> LifecycleError {
    match document::find(conn, id).await {
        Ok(Some(found)) => LifecycleError::Refused {
            transition,
            found: Found::from(&found),
        },
        Ok(None) => LifecycleError::NotFound(id),
        Err(error) => LifecycleError::Database(error),
    }
}

pub(super) async fn append(
    conn: &mut AsyncPgConnection,
    document: &Document,
    stage: Stage,
    kind: EventKind,
    note: Note,
) -> diesel::QueryResult<DocumentEvent> {
    document_event::append(
        conn,
        &NewDocumentEvent {
            document_id: document.id,
            owner_id: document.owner_id,
            attempt: document.attempt,
            stage,
            kind,
            percent: note.percent.clamp(0, 100),
            message: note.message,
            details: note.details,
            state: document.state,
            trace_id: folio_core::trace::current_id(),
        },
    )
    .await
}

//! The document lifecycle: every change of a document's state, by name, as one
//! guarded write. Nothing else in folio writes `documents.state`.
//!
//! # Transitions
//!
//! | transition         | from                                   | to            | guard beyond the state (compare-and-set)                          | event                |
//! |--------------------|----------------------------------------|---------------|-------------------------------------------------------------------|----------------------|
//! | `store`            | (no document)                          | QUEUED        | the owner has no document with these bytes or idempotency key      | STORE COMPLETED      |
//! | `start_try`        | QUEUED, RETRY_WAIT, PROCESSING         | PROCESSING    | attempt a; try number ≤ n; no cancel requested                     | PARSE STARTED        |
//! | `stage_done`       | PROCESSING                             | PROCESSING    | attempt a; held by this try                                        | stage COMPLETED      |
//! | `progress`         | PROCESSING                             | PROCESSING    | attempt a; held by this try                                        | stage PROGRESS       |
//! | `ready`            | PROCESSING                             | READY         | attempt a; held by this try; no cancel requested                   | INDEX COMPLETED      |
//! | `schedule_retry`   | PROCESSING; QUEUED, RETRY_WAIT         | RETRY_WAIT    | attempt a; PROCESSING at try ≤ n holding the lock, or held by this try; else try number < n | RETRY_SCHEDULED |
//! | `fail`             | PROCESSING; QUEUED, RETRY_WAIT         | FAILED        | as `schedule_retry`                                                | FAILED               |
//! | `take_back`        | PROCESSING                             | QUEUED        | the lease has run out and no live worker holds the document's lock; the job goes back in the outbox as the next try (FAILED with WORKER_LOST instead when the try was the last) | stage RETRY_SCHEDULED |
//! | `waiting`          | QUEUED, RETRY_WAIT                     | (unchanged)   | the state and its version (`updated_at`) as read; it has waited past the notice bound | stage PROGRESS: why it waits |
//! | `cancel_requested` | PROCESSING                             | PROCESSING    | none (the flag is set; the worker stops at its next check)         | none                 |
//! | `cancelled`        | QUEUED, RETRY_WAIT; PROCESSING         | CANCELLED     | the owner's cancel before a try runs; or, PROCESSING, attempt a with cancel requested (the worker stopping) | CANCELLED |
//! | `retry_requested`  | FAILED, CANCELLED                      | QUEUED        | the attempt read and the original kept; it becomes attempt + 1 with a new job | STORE PROGRESS |
//! | `replayed`         | FAILED                                 | QUEUED        | as `retry_requested` (the same transition, an operator replaying its dead letter) | STORE PROGRESS |
//! | `reindex_queued`   | READY                                  | READY         | none; a reindex job is queued                                      | EMBED STARTED        |
//! | `reindexed`        | READY                                  | READY         | none                                                               | INDEX COMPLETED      |
//! | `original_deleted` | READY, FAILED, CANCELLED               | (unchanged)   | the original is still kept (retention deletes it; text and chunks stay) | STORE PROGRESS  |
//! | `delete`           | any                                    | (removed)     | none                                                               | none (events go too) |
//!
//! "Held by this try": `start_try` records the delivery's token (drawn per
//! delivery) in `documents.try_token`, and the later writes of that try compare
//! it. A duplicate or stale delivery of the same job (a relay that published
//! twice, a redelivery after a dropped connection while the first worker goes
//! on) therefore finds its expectation false and changes nothing: it cannot move
//! a document backwards, fail a document another try is working on, or
//! overwrite a newer try's result. `start_try` may take a PROCESSING document
//! over from an earlier try only because its caller holds the document's
//! advisory lock (see [`try_lock`]), which a live worker keeps for as long as it
//! runs the document: so the earlier try's worker is gone.
//!
//! "The lease": `start_try` leases the document to the worker running the try
//! until an expiry that worker's heartbeat keeps pushing forward
//! ([`renew_leases`]); leaving PROCESSING ends the lease. A lease runs out
//! only when its worker stopped renewing it, and `take_back` also needs the
//! document's lock free, which no live worker's try leaves it: so a document
//! whose worker died and whose job the broker will not deliver again (a lost
//! message, a purged queue) is queued again instead of staying PROCESSING.
//!
//! Each transition runs inside the caller's transaction (so the outbox row,
//! the chunks or the job's dedup record commit with it), updates the row in one
//! statement whose WHERE clause is the guard, and appends its event as the last
//! statement (see `document_event::append`). A refused transition returns
//! [`LifecycleError::Refused`] with what it found, or
//! [`LifecycleError::NotFound`]; it has written nothing, and a caller that
//! wrote before it rolls back by returning the error from its transaction.
//! Publish a returned event with [`announce`](super::announce) after the commit.

use chrono::{DateTime, Utc};
use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use uuid::Uuid;

use folio_core::queue::EncodedJob;

use super::state::{EventKind, Stage, State};
use crate::models::{
    document::{self, Document, Expected, StateChange},
    document_event::{self, DocumentEvent, NewDocumentEvent},
    outbox::{self, Owned, Priority},
};

/// A transition, by name (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    Store,
    StartTry,
    StageDone,
    Progress,
    Ready,
    ScheduleRetry,
    Fail,
    TakeBack,
    Waiting,
    CancelRequested,
    Cancelled,
    RetryRequested,
    ReindexQueued,
    Reindexed,
    OriginalDeleted,
    Delete,
}

use State::{Cancelled, Failed, Processing, Queued, Ready, RetryWait};

impl Transition {
    /// Every transition, in the order of the table.
    pub const ALL: &[Transition] = &[
        Transition::Store,
        Transition::StartTry,
        Transition::StageDone,
        Transition::Progress,
        Transition::Ready,
        Transition::ScheduleRetry,
        Transition::Fail,
        Transition::TakeBack,
        Transition::Waiting,
        Transition::CancelRequested,
        Transition::Cancelled,
        Transition::RetryRequested,
        Transition::ReindexQueued,
        Transition::Reindexed,
        Transition::OriginalDeleted,
        Transition::Delete,
    ];

    /// The name in the table.
    pub const fn name(self) -> &'static str {
        match self {
            Transition::Store => "store",
            Transition::StartTry => "start_try",
            Transition::StageDone => "stage_done",
            Transition::Progress => "progress",
            Transition::Ready => "ready",
            Transition::ScheduleRetry => "schedule_retry",
            Transition::Fail => "fail",
            Transition::TakeBack => "take_back",
            Transition::Waiting => "waiting",
            Transition::CancelRequested => "cancel_requested",
            Transition::Cancelled => "cancelled",
            Transition::RetryRequested => "retry_requested",
            Transition::ReindexQueued => "reindex_queued",
            Transition::Reindexed => "reindexed",
            Transition::OriginalDeleted => "original_deleted",
            Transition::Delete => "delete",
        }
    }

    /// The states it may leave (`store` leaves none: it creates the document).
    pub const fn from(self) -> &'static [State] {
        match self {
            Transition::Store => &[],
            Transition::StartTry => &[Queued, RetryWait, Processing],
            Transition::StageDone | Transition::Progress | Transition::Ready | Transition::CancelRequested => &[Processing],
            Transition::ScheduleRetry | Transition::Fail | Transition::Cancelled => &[Queued, RetryWait, Processing],
            Transition::TakeBack => &[Processing],
            Transition::Waiting => &[Queued, RetryWait],
            Transition::RetryRequested => &[Failed, Cancelled],
            Transition::ReindexQueued | Transition::Reindexed => &[Ready],
            Transition::OriginalDeleted => &[Ready, Failed, Cancelled],
            Transition::Delete => State::ALL,
        }
    }

    /// The state it leaves a document in that was `from` (None: `delete`
    /// removes it); only `waiting` and `original_deleted` depend on `from`,
    /// which they keep.
    pub const fn to(self, from: State) -> Option<State> {
        match self {
            Transition::Waiting | Transition::OriginalDeleted => Some(from),
            Transition::Store | Transition::RetryRequested | Transition::TakeBack => Some(Queued),
            Transition::StartTry | Transition::StageDone | Transition::Progress | Transition::CancelRequested => Some(Processing),
            Transition::Ready | Transition::ReindexQueued | Transition::Reindexed => Some(Ready),
            Transition::ScheduleRetry => Some(RetryWait),
            Transition::Fail => Some(Failed),
            Transition::Cancelled => Some(Cancelled),
            Transition::Delete => None,
        }
    }

    /// Whether it may leave `state`.
    pub fn leaves(self, state: State) -> bool {
        self.from().contains(&state)
    }
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the table has a transition from `from` to `to`: the check a test
/// applies to every pair of consecutive states in an event log.
pub fn allowed(from: State, to: State) -> bool {
    Transition::ALL.iter().any(|t| t.leaves(from) && t.to(from) == Some(to))
}

/// What a refused transition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub state: State,
    pub attempt: i32,
    pub try_number: i32,
    pub cancel_requested: bool,
    /// Whether its original bytes are kept (retention may have deleted them).
    pub original_kept: bool,
}

impl From<&Document> for Found {
    fn from(d: &Document) -> Self {
        Found {
            state: d.state,
            attempt: d.attempt,
            try_number: d.try_number,
            cancel_requested: d.cancel_requested,
            original_kept: d.has_original(),
        }
    }
}

/// Why a transition did not happen. Converts into the api-server's error and
/// the worker's job error.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The document does not exist (or no longer does).
    #[error("no document {0}")]
    NotFound(Uuid),
    /// The document is not as the transition expects.
    #[error(
        "{transition} refused: the document is {} on attempt {}, try {}{}{}",
        found.state,
        found.attempt,
        found.try_number,
        if found.cancel_requested { ", cancel requested" } else { "" },
        if found.original_kept { "" } else { ", its original deleted by retention" }
    )]
    Refused { transition: Transition, found: Found },
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// A document after a transition, with the event that records it (None for
/// the transitions that record none).
#[derive(Debug, Clone)]
pub struct Moved {
    pub document: Document,
    pub event: Option<DocumentEvent>,
}

/// What an upload knows of a new document; `store` adds the lifecycle's
/// starting point (QUEUED at STORE, attempt 1, no try yet).
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub filename: String,
    pub title: String,
    pub content_type: String,
    pub format: String,
    pub labels: Vec<String>,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
    pub blob_key: String,
    pub idempotency_key: Option<String>,
    /// Tries per attempt.
    pub max_tries: i32,
    /// Its job's place among its owner's (not stored on the document).
    pub priority: Priority,
}

impl NewDocument {
    /// The row `store` inserts.
    pub fn into_row(self) -> Document {
        let now = Utc::now();
        Document {
            id: self.id,
            owner_id: self.owner_id,
            filename: self.filename,
            title: self.title,
            content_type: self.content_type,
            format: self.format,
            labels: self.labels.into_iter().map(Some).collect(),
            size_bytes: self.size_bytes,
            sha256: self.sha256,
            blob_key: self.blob_key,
            idempotency_key: self.idempotency_key,
            state: Queued,
            stage: Some(Stage::Store),
            attempt: 1,
            try_number: 0,
            max_tries: self.max_tries,
            next_retry_at: None,
            error_code: None,
            error_message: None,
            will_retry: false,
            cancel_requested: false,
            pages: None,
            characters: None,
            chunk_count: None,
            stage_ms: serde_json::json!({}),
            created_at: now,
            updated_at: now,
            completed_at: None,
            try_token: None,
            lease_worker: None,
            lease_expires_at: None,
        }
    }
}

/// A delivery's try at one attempt of a document.
#[derive(Debug, Clone, Copy)]
pub struct Try {
    /// The attempt the job is for (a user's retry starts the next one).
    pub attempt: i32,
    /// This try's number within the attempt, 1-based.
    pub number: i32,
    /// How many tries the attempt gets.
    pub max: i32,
    /// Drawn per delivery: what "held by this try" compares.
    pub token: Uuid,
}

/// The lease `start_try` gives the worker running a try: its heartbeat renews
/// it ([`renew_leases`]); once it runs out while no live worker holds the
/// document, [`take_back`] queues the document again.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub worker: Uuid,
    pub ttl: std::time::Duration,
}

/// What an event says beyond its stage and kind.
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub percent: i32,
    pub message: String,
    pub details: serde_json::Value,
}

/// Results a finished stage records on the document.
#[derive(Debug, Clone)]
pub struct StageDone {
    pub stage: Stage,
    pub note: Note,
    /// Set only when the document has no title yet.
    pub title: Option<String>,
    pub pages: Option<Option<i32>>,
    pub characters: Option<Option<i64>>,
    /// Milliseconds per stage so far.
    pub stage_ms: serde_json::Value,
}

/// What INDEX (or a reindex) wrote: how many chunks, and how they were made
/// (`folio_models::embed::chunking`), recorded on the document.
#[derive(Debug, Clone)]
pub struct Chunked {
    pub count: i32,
    pub chunking: String,
}

/// A transient failure and when the next try runs.
#[derive(Debug, Clone)]
pub struct RetryScheduled {
    pub next_at: DateTime<Utc>,
    pub message: String,
}

mod lease;
mod waiting;
mod writes;

pub use lease::*;
pub use waiting::*;
pub use writes::*;

#[cfg(test)]
mod tests;

//! The audit log writer. RPCs never wait for it: events go into a bounded
//! channel and a background task writes them in batches. When the channel is
//! full (Postgres slow or down) events are dropped with a warning rather than
//! slowing or failing the calls they describe.
//!
//! Handlers describe what an auth event was with [`note`]; the auth middleware
//! records one row per call, merging the note in.

use std::{cell::RefCell, time::Duration};

use folio_db::{self as db, models::audit_event::NewAuditEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events buffered before new ones are dropped.
const CAPACITY: usize = 10_000;
/// Events written per insert.
const BATCH: usize = 500;

/// What a handler adds to its call's audit row.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// The auth event ("login", "login_failed", "refresh", ...).
    pub event: String,
    /// What the call acted on ("user:<id>").
    pub target: String,
    /// The actor when the call had no token (a login names its user).
    pub actor_id: Option<Uuid>,
    /// The email the event concerns.
    pub actor_email: String,
}

tokio::task_local! {
    /// The note of the call being handled on this task.
    pub static NOTE: RefCell<Option<AuditNote>>;
}

/// Sets the audit note of the current call (a no-op outside a call).
pub fn note(note: AuditNote) {
    let _ = NOTE.try_with(|slot| *slot.borrow_mut() = Some(note));
}

/// The sending side of the audit log.
#[derive(Clone, Debug)]
pub struct Auditor {
    sender: mpsc::Sender<NewAuditEvent>,
}

impl Auditor {
    /// Starts the writer; it drains what is queued and stops after `cancel`.
    pub fn start(pool: db::Pool, cancel: CancellationToken) -> (Auditor, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        let writer = tokio::spawn(write_batches(pool, receiver, cancel));
        (Auditor { sender }, writer)
    }

    /// Queues `event`; drops it (with a warning) if the queue is full.
    pub fn record(&self, event: NewAuditEvent) {
        if let Err(error) = self.sender.try_send(event) {
            tracing::warn!(%error, "audit queue full or closed, event dropped");
        }
    }
}

async fn write_batches(pool: db::Pool, mut receiver: mpsc::Receiver<NewAuditEvent>, cancel: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            received = receiver.recv_many(&mut batch, BATCH) => received,
            () = cancel.cancelled() => {
                receiver.close();
                receiver.recv_many(&mut batch, CAPACITY).await
            }
        };
        if received == 0 {
            return;
        }
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=5 {
            let written = async {
                let mut conn = pool.get().await?;
                db::models::audit_event::insert_many(&mut conn, &batch).await?;
                anyhow::Ok(())
            }
            .await;
            match written {
                Ok(()) => break,
                Err(error) if attempt < 5 => {
                    tracing::warn!(error = format!("{error:#}"), "audit write failed, retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => tracing::error!(error = format!("{error:#}"), dropped = batch.len(), "audit events lost"),
            }
        }
        batch.clear();
    }
}

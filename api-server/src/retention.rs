//! Retention: the sweeper that deletes documents, and the originals of
//! documents, past the periods the run-time settings give
//! (`retention_document_days`, `retention_original_days` and the per-label
//! rules; see `folio_db::models::retention_rule` for how a document's period
//! is found).
//!
//! Every api-server runs [`run`], but a sweep needs the sweeper's advisory
//! lock, so one server sweeps at a time and the others skip that round. A
//! sweep works in batches of `FOLIO_RETENTION_BATCH` documents, each one
//! transaction that locks the batch's rows, applies the lifecycle's `delete`
//! or `original_deleted` to each and writes one audit row (rpc "retention")
//! naming them; the blobs go after the commit (a failure there leaves an
//! orphan blob, never a row pointing at nothing). Whole documents go first,
//! so no original is deleted just before its document.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use folio_core::{blobs::Blobs, cache::Cache};
use folio_db::{
    self as db,
    documents::{
        self,
        lifecycle::{self, LifecycleError},
    },
    models::{
        audit_event::{self, NewAuditEvent},
        document_event::DocumentEvent,
        retention_rule::{self, Kept},
    },
};
use tokio_util::sync::CancellationToken;

use crate::{document_service::blob_keys, settings::Settings};

/// What the sweeper needs.
#[derive(Clone)]
pub struct Sweeper {
    pub pool: db::Pool,
    pub blobs: Blobs,
    pub cache: Cache,
    pub settings: Settings,
    /// Documents per transaction and audit row.
    pub batch: u32,
}

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub documents: usize,
    pub originals: usize,
}

/// Sweeps every `interval` (the first soon after start) until `cancel`; a
/// failed sweep is logged and tried again at the next.
pub async fn run(sweeper: Sweeper, interval: Duration, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match sweeper.sweep_if_leader(Utc::now(), &cancel).await {
            Ok(Some(swept)) if swept != Swept::default() => {
                tracing::info!(documents = swept.documents, originals = swept.originals, "retention sweep deleted");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "retention sweep failed; trying again at the next"),
        }
    }
}

impl Sweeper {
    /// One sweep as of `now`, if no other api-server is sweeping (None then).
    pub async fn sweep_if_leader(&self, now: DateTime<Utc>, cancel: &CancellationToken) -> anyhow::Result<Option<Swept>> {
        let mut conn = self.pool.get().await?;
        if !retention_rule::try_lead_sweep(&mut conn).await? {
            return Ok(None);
        }
        let swept = self.sweep(&mut conn, now, cancel).await;
        if let Err(error) = retention_rule::end_sweep(&mut conn).await {
            // The lock must not stay with a pooled session: close it.
            tracing::warn!(%error, "could not release the retention lock; closing its connection");
            drop(db::PooledConnection::take(conn));
        }
        swept.map(Some)
    }

    /// Deletes what is due as of `now`, batch by batch, until nothing is (or
    /// `cancel`).
    async fn sweep(&self, conn: &mut AsyncPgConnection, now: DateTime<Utc>, cancel: &CancellationToken) -> anyhow::Result<Swept> {
        let retention = self.settings.retention();
        let limit = i64::from(self.batch);
        let mut swept = Swept::default();
        loop {
            let deleted = conn
                .transaction(async |conn| {
                    let due = retention_rule::due(conn, Kept::Document, retention.document_days, &retention.rules, now, limit).await?;
                    let mut deleted = Vec::with_capacity(due.len());
                    for document in &due {
                        match lifecycle::delete(conn, document.id).await {
                            Ok(gone) => deleted.push((gone, document.days)),
                            Err(LifecycleError::NotFound(_)) => {}
                            Err(error) => return Err(error),
                        }
                    }
                    if !deleted.is_empty() {
                        let ids = deleted.iter().map(|(d, days)| format!("{}({days}d)", d.id));
                        audit_event::insert_many(conn, &[audit_row("retention_documents_deleted", ids)]).await?;
                    }
                    Ok(deleted)
                })
                .await?;
            for (document, _) in &deleted {
                for key in blob_keys(document) {
                    if let Err(error) = self.blobs.delete(&key).await {
                        tracing::warn!(%error, key, "blob of a document past its retention not removed");
                    }
                }
            }
            swept.documents += deleted.len();
            if deleted.len() < self.batch as usize || cancel.is_cancelled() {
                break;
            }
        }
        loop {
            let deleted: Vec<(String, Option<DocumentEvent>)> = conn
                .transaction(async |conn| {
                    let due = retention_rule::due(conn, Kept::Original, retention.original_days, &retention.rules, now, limit).await?;
                    let mut deleted = Vec::with_capacity(due.len());
                    let mut named = Vec::with_capacity(due.len());
                    for document in due {
                        match lifecycle::original_deleted(conn, document.id, document.days).await {
                            Ok(moved) => {
                                named.push(format!("{}({}d)", document.id, document.days));
                                deleted.push((document.blob_key, moved.event));
                            }
                            Err(LifecycleError::Database(error)) => return Err(LifecycleError::Database(error)),
                            // Retried or deleted since it was found: not due now.
                            Err(_) => {}
                        }
                    }
                    if !deleted.is_empty() {
                        audit_event::insert_many(conn, &[audit_row("retention_originals_deleted", named.into_iter())]).await?;
                    }
                    Ok(deleted)
                })
                .await?;
            for (key, event) in &deleted {
                if let Err(error) = self.blobs.delete(key).await {
                    tracing::warn!(%error, key, "original past its retention not removed");
                }
                if let Some(event) = event {
                    documents::announce(&self.cache, event).await;
                }
            }
            swept.originals += deleted.len();
            if deleted.len() < self.batch as usize || cancel.is_cancelled() {
                break;
            }
        }
        Ok(swept)
    }
}

/// The audit row of one batch: `event`, naming each document and its period.
fn audit_row(event: &str, documents: impl Iterator<Item = String>) -> NewAuditEvent {
    NewAuditEvent {
        at: Utc::now(),
        rpc: "retention".into(),
        target: format!("documents:{}", documents.collect::<Vec<_>>().join(",")),
        outcome: "OK".into(),
        event: event.into(),
        ..Default::default()
    }
}

//! Waiting notices: a document that has waited for a worker past
//! `FOLIO_WAIT_NOTICE_SECS` gets an event saying why (no worker alive, how
//! many documents are ahead of it), again after 2, 4, 8… times the bound.
//! Every api-server runs this; the `waiting` transition's guard (state and
//! version as read, row locked) keeps two from noting one wait twice at once.

use std::time::Duration;

use folio_core::cache::Cache;
use folio_db::{
    self as db,
    documents::{
        self,
        lifecycle::{self, WaitNotice},
    },
};
use tokio_util::sync::CancellationToken;

/// Documents one look notes at most (the next look takes more).
const BATCH: i64 = 100;

/// How often to look: a quarter of the bound, between 1 s and 15 s.
fn interval(notice: &WaitNotice) -> Duration {
    (notice.bound / 4).clamp(Duration::from_secs(1), Duration::from_secs(15))
}

/// Notes waiting documents until `cancel` fires; a failed look is logged and
/// tried again at the next.
pub async fn run(pool: db::Pool, cache: Cache, notice: WaitNotice, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval(&notice)) => {}
        }
        let look = async {
            let mut conn = pool.get().await?;
            anyhow::Ok(lifecycle::note_waiting(&mut conn, &notice, BATCH).await?)
        };
        match look.await {
            Ok(events) => {
                for event in &events {
                    tracing::info!(document_id = %event.document_id, message = %event.message, "a document waits");
                    documents::announce(&cache, event).await;
                }
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "noting waiting documents failed"),
        }
    }
}

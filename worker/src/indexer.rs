//! The search indexer. INDEX writes chunks outside the HNSW graph and the RUM
//! keyword index (`indexed` false; both indexes are partial), so a document
//! becomes READY at the speed of plain inserts, and searches scan those chunks
//! exactly (vectors) or through their own GIN index (keywords) until this task
//! has indexed them. Every worker runs `FOLIO_INDEXERS` of them (2 by default,
//! one backend each: a second drained ~16% faster on 2 cores, BENCHMARKS.md,
//! Sustained ingest); `FOR UPDATE SKIP LOCKED` keeps them on different rows. Graph and RUM inserts are the most expensive writes there
//! are, so an indexer yields to its worker's jobs: while jobs are in flight it
//! indexes only when more than `FOLIO_HNSW_MAX_PENDING` chunks wait (bounding
//! what searches scan without the ranked indexes).

use std::{sync::Arc, time::Duration};

use folio_db::{self as db, models::chunk};
use tokio_util::sync::CancellationToken;

use crate::activity::Activity;

/// Chunks indexed per transaction: small enough that a document
/// being replaced or deleted waits for at most about a second of work.
const BATCH: i64 = 256;
/// How long an idle indexer waits before looking again.
const IDLE: Duration = Duration::from_millis(200);

/// Indexes pending chunks until `cancel`; a batch in progress finishes.
pub async fn run(pool: db::Pool, activity: Arc<Activity>, max_pending: i64, cancel: CancellationToken) {
    loop {
        let indexed = async {
            let mut conn = pool.get().await?;
            let busy = activity.snapshot().1 > 0;
            if busy && !chunk::pending_over(&mut conn, max_pending).await? {
                return anyhow::Ok(0);
            }
            anyhow::Ok(chunk::index_pending(&mut conn, BATCH).await?)
        }
        .await;
        let pause = match indexed {
            Ok(count) if count as i64 == BATCH => Duration::ZERO,
            Ok(_) => IDLE,
            Err(error) => {
                tracing::warn!(%error, "could not index chunks; trying again");
                IDLE * 5
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

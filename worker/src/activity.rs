//! What the worker is doing right now, for its heartbeat and `ListWorkers`.

use std::{sync::Mutex, time::Duration};

use diesel_async::AsyncConnection as _;
use folio_core::cache::Cache;
use folio_db::{
    self as db,
    documents::{
        self,
        lifecycle::{self, LifecycleError, Moved},
    },
    models::worker,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The job ids in flight, oldest first.
#[derive(Default)]
pub struct Activity {
    in_flight: Mutex<Vec<String>>,
}

impl Activity {
    /// Notes that `job_id` started; the guard notes its end when dropped.
    pub fn start(&self, job_id: String) -> ActivityGuard<'_> {
        self.in_flight.lock().expect("activity lock").push(job_id.clone());
        ActivityGuard { activity: self, job_id }
    }

    /// The oldest job in flight and how many there are.
    pub fn snapshot(&self) -> (Option<String>, usize) {
        let jobs = self.in_flight.lock().expect("activity lock");
        (jobs.first().cloned(), jobs.len())
    }
}

/// Removes its job from the [`Activity`] when dropped.
pub struct ActivityGuard<'a> {
    activity: &'a Activity,
    job_id: String,
}

impl Drop for ActivityGuard<'_> {
    fn drop(&mut self) {
        let mut jobs = self.activity.in_flight.lock().expect("activity lock");
        if let Some(index) = jobs.iter().position(|j| *j == self.job_id) {
            jobs.remove(index);
        }
    }
}

/// What the heartbeat needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Beat {
    pub worker_id: Uuid,
    pub interval: Duration,
    /// The lease each beat renews (`FOLIO_LEASE_SECS`).
    pub lease: Duration,
}

/// Documents one beat takes back at most (the next beat takes more).
const TAKE_BACK_BATCH: i64 = 32;

/// Every `interval` until `cancel` fires: writes a heartbeat, renews the
/// leases of the documents this worker runs, and takes back documents whose
/// lease ran out (their worker died and the broker will not deliver their job
/// again). A failed beat is logged and retried at the next tick: the worker
/// keeps working.
pub async fn heartbeat(pool: db::Pool, cache: Cache, beat: Beat, activity: std::sync::Arc<Activity>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(beat.interval) => {}
        }
        let (current, count) = activity.snapshot();
        let beating = async {
            let mut conn = pool.get().await?;
            worker::heartbeat(&mut conn, beat.worker_id, current.as_deref(), count as i32).await?;
            lifecycle::renew_leases(&mut conn, beat.worker_id, beat.lease).await?;
            take_back_expired(&mut conn, &cache).await
        };
        if let Err(error) = beating.await {
            tracing::warn!(error = format!("{error:#}"), "heartbeat failed");
        }
    }
}

/// Takes back what [`lifecycle::expired_leases`] finds, each in a
/// transaction of its own, and announces what it did.
async fn take_back_expired(conn: &mut db::PooledConnection, cache: &Cache) -> anyhow::Result<()> {
    for id in lifecycle::expired_leases(conn, TAKE_BACK_BATCH).await? {
        let moved = conn.transaction(async |conn| lifecycle::take_back(conn, id).await).await;
        let moved = match moved {
            Ok(moved) => moved,
            // Finished, renewed or taken back by another worker meanwhile.
            Err(LifecycleError::Refused { .. } | LifecycleError::NotFound(_)) => None,
            Err(error) => return Err(error.into()),
        };
        if let Some(Moved { document, event }) = moved {
            tracing::warn!(document_id = %id, state = %document.state, try_number = document.try_number, "took back a document whose worker's lease ran out");
            if let Some(event) = event {
                documents::announce(cache, &event).await;
            }
        }
    }
    Ok(())
}

//! What the worker is doing right now, for its heartbeat and `ListWorkers`.

use std::{sync::Mutex, time::Duration};

use folio_db::{self as db, models::worker};
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

/// Writes a heartbeat every `interval` until `cancel` fires. A failed heartbeat
/// is logged and retried at the next tick: the worker keeps working.
pub async fn heartbeat(pool: db::Pool, worker_id: Uuid, activity: std::sync::Arc<Activity>, interval: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let (current, count) = activity.snapshot();
        let beat = async {
            let mut conn = pool.get().await?;
            worker::heartbeat(&mut conn, worker_id, current.as_deref(), count as i32).await?;
            anyhow::Ok(())
        };
        if let Err(error) = beat.await {
            tracing::warn!(error = format!("{error:#}"), "heartbeat failed");
        }
    }
}

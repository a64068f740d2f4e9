//! Recording how a try of a ProcessDocument job failed: by the job itself
//! while it holds the document's lock (`Holding::Lock`), and by the consumer
//! after the retry's publish (`Holding::Token`, which the lifecycle refuses
//! once the job recorded it, and which covers a job that failed before it
//! took the lock).

use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use folio_db::documents::{
    self,
    lifecycle::{self, Holding, LifecycleError, RetryScheduled, Try},
};
use folio_proto::queue::v1::ProcessDocument;
use uuid::Uuid;

use super::{release, try_of};
use crate::jobs::{self, Delivery, JobContext, JobError};

/// How a try that failed is recorded.
enum Failure<'a> {
    Retry(RetryScheduled),
    Fail { code: &'a str, message: String },
}

/// Records, holding the document's lock, how try `at` failed: RETRY_WAIT when
/// a retry follows (transient, with a delay), FAILED otherwise.
pub(super) async fn record_failure(context: &JobContext, document_id: Uuid, at: &Try, retry_delay: Option<Duration>, error: &JobError) {
    let failure = match (error, retry_delay) {
        (JobError::Transient(error), Some(delay)) => Failure::Retry(retry_at(delay, error)),
        (JobError::Transient(error), None) => Failure::Fail {
            code: "UNAVAILABLE",
            message: jobs::unavailable(error, false),
        },
        (JobError::Permanent { code, message }, _) => Failure::Fail {
            code,
            message: message.clone(),
        },
        (JobError::Superseded(_), _) => return,
    };
    settle(context, document_id, at, Holding::Lock, failure).await;
}

fn retry_at(delay: Duration, error: &anyhow::Error) -> RetryScheduled {
    RetryScheduled {
        next_at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
        message: jobs::unavailable(error, true),
    }
}

/// A transient failure will be retried after `delay`: RETRY_WAIT with the next
/// time, the error and "will retry" (already recorded under the lock if the
/// job got that far; then the lifecycle refuses this).
pub(in crate::jobs) async fn retry_scheduled(
    context: &JobContext,
    body: &ProcessDocument,
    delivery: Delivery,
    delay: Duration,
    error: &anyhow::Error,
) {
    if let Ok(document_id) = body.document_id.parse::<Uuid>() {
        let failure = Failure::Retry(retry_at(delay, error));
        settle(context, document_id, &try_of(body, delivery), Holding::Token, failure).await;
    }
}

/// The job failed for good: FAILED with the error code. False when the
/// database could not be reached (see [`settle`]).
pub(in crate::jobs) async fn failed(context: &JobContext, body: &ProcessDocument, delivery: Delivery, code: &str, message: &str) -> bool {
    let Ok(document_id) = body.document_id.parse::<Uuid>() else {
        return true;
    };
    let failure = Failure::Fail {
        code,
        message: message.to_owned(),
    };
    settle(context, document_id, &try_of(body, delivery), Holding::Token, failure).await
}

/// Records a failed try, which the lifecycle refuses when another delivery
/// holds the document or it moved on. Failures to record are logged; the
/// result is false only when the database could not be reached, true when
/// the failure was recorded or refused.
async fn settle(context: &JobContext, document_id: Uuid, at: &Try, holding: Holding, failure: Failure<'_>) -> bool {
    let mut conn = match context.pool.get().await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, %document_id, "could not record the job's failure");
            return false;
        }
    };
    // Not holding the lock (the job failed before it took it, or the consumer
    // records after the job let go): take it if it is free, so a document a
    // crashed worker left PROCESSING is settled as well.
    let locked = holding == Holding::Token && lifecycle::try_lock(&mut conn, document_id).await.unwrap_or(false);
    let holding = if locked { Holding::Lock } else { holding };
    let recorded = conn
        .transaction(async |conn| match failure {
            Failure::Retry(retry) => lifecycle::schedule_retry(conn, document_id, at, holding, retry).await,
            Failure::Fail { code, message } => lifecycle::fail(conn, document_id, at, holding, code, &message).await,
        })
        .await;
    if locked {
        release(conn, document_id).await;
    }
    match recorded {
        Ok(moved) => {
            if let Some(event) = &moved.event {
                documents::announce(&context.cache, event).await;
            }
            true
        }
        Err(LifecycleError::Database(error)) => {
            tracing::error!(%error, %document_id, "could not record the job's failure");
            false
        }
        Err(refused) => {
            tracing::debug!(%document_id, reason = %refused, "the job's failure not recorded: already recorded, or the document moved on");
            true
        }
    }
}

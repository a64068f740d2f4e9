//! Per-account quotas in domain terms: how many documents and bytes an
//! account may keep (its own quota, set with UpdateUser, else the run-time
//! settings `quota_documents` and `quota_bytes`; 0: no limit), what it keeps,
//! and whether one more document fits. Uploads check them in the transaction
//! that stores the document; GetDocumentStats reports them. [`Backlog`] is
//! the bound on documents waiting for the workers (backpressure).

use folio_db::models::document::Usage;
use tonic_types::QuotaViolation;

use crate::error::{ApiError, ApiResult};

/// An account's quotas (0: no limit) and what its documents take now.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub documents: i64,
    pub bytes: i64,
    pub used: Usage,
}

impl Quota {
    /// Whether any limit applies.
    pub fn limited(&self) -> bool {
        self.documents > 0 || self.bytes > 0
    }

    /// Whether one more document of `bytes` fits; RESOURCE_EXHAUSTED with a
    /// QuotaFailure naming each quota it would pass if not.
    pub fn admit(&self, bytes: i64) -> ApiResult<()> {
        let mut violations = Vec::new();
        if self.documents > 0 && self.used.documents + 1 > self.documents {
            violations.push(QuotaViolation::new(
                "documents",
                format!("the account keeps {} of its {} documents", self.used.documents, self.documents),
            ));
        }
        if self.bytes > 0 && self.used.bytes + bytes > self.bytes {
            violations.push(QuotaViolation::new(
                "bytes",
                format!(
                    "the account keeps {} of its {} bytes and this document has {bytes}",
                    self.used.bytes, self.bytes
                ),
            ));
        }
        if violations.is_empty() {
            return Ok(());
        }
        let message = violations.iter().map(|v| v.description.clone()).collect::<Vec<_>>().join("; ");
        Err(ApiError::QuotaExceeded {
            message: format!("over quota: {message}; delete documents or ask an admin for a larger quota"),
            violations,
        })
    }
}

/// How long a drain rate is measured over.
pub const DRAIN_WINDOW_SECS: i64 = 60;

/// An owner's documents waiting to be released to the workers, against the
/// setting `max_waiting_per_owner` (0: no limit), and how many of them were
/// released in the last [`DRAIN_WINDOW_SECS`].
#[derive(Debug, Clone, Copy)]
pub struct Backlog {
    pub waiting: i64,
    pub limit: i64,
    pub released: i64,
}

impl Backlog {
    /// Whether one more document may wait; RESOURCE_EXHAUSTED with reason
    /// `BACKLOG_FULL` and a RetryInfo of when the backlog will be under the
    /// bound at the rate it drained (a minute if it did not drain; 1 s to
    /// an hour).
    pub fn admit(&self) -> ApiResult<()> {
        if self.limit == 0 || self.waiting < self.limit {
            return Ok(());
        }
        let excess = (self.waiting - self.limit + 1) as f64;
        let per_sec = self.released as f64 / DRAIN_WINDOW_SECS as f64;
        let retry_after = if per_sec > 0.0 {
            std::time::Duration::from_secs_f64((excess / per_sec).clamp(1.0, 3600.0).ceil())
        } else {
            std::time::Duration::from_secs(60)
        };
        Err(ApiError::ResourceExhausted {
            message: format!(
                "{} of your documents wait for the workers, the most one owner may have waiting is {}; \
                 they drain at {per_sec:.1} per second, retry in {} s",
                self.waiting,
                self.limit,
                retry_after.as_secs()
            ),
            retry_after,
        }
        .because("BACKLOG_FULL"))
    }
}

/// How long a counted backlog is trusted.
const COUNTED_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Each owner's waiting documents as this server last counted them, plus
/// the uploads it admitted since. Counting an import's backlog at every one
/// of its uploads would cost Postgres what the workers need; while an owner
/// is far from the bound (under half of it) an upload is admitted on a count
/// at most [`COUNTED_FOR`] old, and near it every upload counts.
#[derive(Debug, Default)]
pub struct Backlogs {
    counted: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, (std::time::Instant, i64)>>,
}

impl Backlogs {
    /// Admits one more upload of `owner` without a count, if a recent count
    /// says it is far from `limit`.
    pub fn admit_estimated(&self, owner: uuid::Uuid, limit: i64) -> bool {
        let mut counted = self.counted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match counted.get_mut(&owner) {
            Some((at, waiting)) if at.elapsed() < COUNTED_FOR && (*waiting + 1) * 2 <= limit => {
                *waiting += 1;
                true
            }
            _ => false,
        }
    }

    /// Records a count of `owner`'s waiting documents (the upload it admits
    /// included, when `admitted`).
    pub fn counted(&self, owner: uuid::Uuid, waiting: i64, admitted: bool) {
        let mut counted = self.counted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counted.retain(|_, (at, _)| at.elapsed() < COUNTED_FOR);
        counted.insert(owner, (std::time::Instant::now(), waiting + i64::from(admitted)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(waiting: i64, limit: i64, released: i64) -> Option<u64> {
        let backlog = Backlog { waiting, limit, released };
        match backlog.admit() {
            Ok(()) => None,
            Err(ApiError::Because { error, reason }) => {
                assert_eq!(reason, "BACKLOG_FULL");
                match *error {
                    ApiError::ResourceExhausted { retry_after, .. } => Some(retry_after.as_secs()),
                    other => panic!("{other:?}"),
                }
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn far_from_the_bound_a_recent_count_admits_and_near_it_every_upload_counts() {
        let backlogs = Backlogs::default();
        let owner = uuid::Uuid::new_v4();
        assert!(!backlogs.admit_estimated(owner, 10), "never counted");
        backlogs.counted(owner, 2, true);
        assert!(backlogs.admit_estimated(owner, 10), "4 of 10");
        assert!(backlogs.admit_estimated(owner, 10), "5 of 10");
        assert!(!backlogs.admit_estimated(owner, 10), "6 of 10: counts");
        assert!(!backlogs.admit_estimated(uuid::Uuid::new_v4(), 10), "another owner");
    }

    #[test]
    fn a_full_backlog_says_when_it_will_have_drained_at_its_rate() {
        assert_eq!(retry_after(99, 100, 0), None);
        assert_eq!(retry_after(5_000, 0, 0), None, "0 is no limit");
        // 600 released in the last minute: 10 per second; 101 over the bound
        // (the one to admit included) drain in 10.1 s.
        assert_eq!(retry_after(200, 100, 600), Some(11));
        assert_eq!(retry_after(100, 100, 0), Some(60), "not draining: a minute");
        assert_eq!(retry_after(1_000_000, 100, 1), Some(3600), "at most an hour");
        assert_eq!(retry_after(100, 100, 6_000), Some(1), "at least a second");
    }
}

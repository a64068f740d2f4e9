//! Per-account quotas in domain terms: how many documents and bytes an
//! account may keep (its own quota, set with UpdateUser, else the run-time
//! settings `quota_documents` and `quota_bytes`; 0: no limit), what it keeps,
//! and whether one more document fits. Uploads check them in the transaction
//! that stores the document; GetDocumentStats reports them.

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

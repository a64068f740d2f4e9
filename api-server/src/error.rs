//! The api-server's one error type and its one mapping to a gRPC status.
//!
//! Handlers return [`ApiError`]; `From<ApiError> for Status` decides the code and
//! attaches google.rpc details: ErrorInfo on every error (domain [`DOMAIN`], a
//! stable `reason` clients can switch on, and metadata), BadRequest field
//! violations, RetryInfo. A variant has a default reason ([`ApiError::reason`]);
//! [`ApiError::because`] names a finer one where clients act differently.
//! Every reason is listed in `proto/folio/v1/system.proto` ("Errors").
//! Internal errors are logged with a reference and answered without their
//! text, so no SQL, broker or file-system detail reaches a client.

use std::collections::HashMap;

use folio_db::documents::lifecycle::{LifecycleError, Transition};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

/// ErrorInfo's `domain` on every error folio answers.
pub const DOMAIN: &str = "folio";

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more request fields are invalid.
    #[error("invalid argument")]
    InvalidArgument(Vec<FieldViolation>),
    /// The caller could not be authenticated.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// What was asked for does not exist (or is not the caller's to see).
    #[error("{0}")]
    NotFound(String),
    /// The resource is not in a state that allows this.
    #[error("{0}")]
    FailedPrecondition(String),
    /// What was to be created exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// Over a limit; retry after the delay.
    #[error("{message}")]
    ResourceExhausted { message: String, retry_after: std::time::Duration },
    /// An upload would take its account past a quota.
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        violations: Vec<tonic_types::QuotaViolation>,
    },
    /// What the server does not do (a compressed request).
    #[error("{0}")]
    Unimplemented(String),
    /// A request message over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The call's deadline (the client's or the server's bound) passed.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A dependency is unreachable; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: a bug or an unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    /// Another error, with a finer reason than its variant's (see
    /// [`ApiError::because`]).
    #[error("{error}")]
    Because { reason: &'static str, error: Box<ApiError> },
}

impl ApiError {
    /// A single invalid field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// This error with `reason` as its ErrorInfo reason.
    pub fn because(self, reason: &'static str) -> Self {
        ApiError::Because {
            reason,
            error: Box::new(self.unreasoned()),
        }
    }

    /// The ErrorInfo reason: a finer one if given, else the variant's.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) => "INVALID_FIELDS",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::PermissionDenied(_) => "PERMISSION_DENIED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::FailedPrecondition(_) => "FAILED_PRECONDITION",
            ApiError::AlreadyExists(_) => "ALREADY_EXISTS",
            ApiError::ResourceExhausted { .. } => "RATE_LIMITED",
            ApiError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            ApiError::Unimplemented(_) => "UNIMPLEMENTED",
            ApiError::TooLarge(_) => "MESSAGE_TOO_LARGE",
            ApiError::DeadlineExceeded(_) => "DEADLINE_EXCEEDED",
            ApiError::Unavailable(_) => "DEPENDENCY_UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
            ApiError::Because { reason, .. } => reason,
        }
    }

    fn unreasoned(self) -> ApiError {
        match self {
            ApiError::Because { error, .. } => error.unreasoned(),
            error => error,
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::NotFound(id) => ApiError::NotFound(format!("no document {id}")),
            LifecycleError::Refused {
                transition: Transition::RetryRequested,
                found,
            } if !found.original_kept => ApiError::FailedPrecondition(
                "retention deleted this document's original, which a retry would parse again; its text and chunks stay searchable".into(),
            )
            .because("ORIGINAL_DELETED"),
            LifecycleError::Refused { transition, found } => ApiError::FailedPrecondition(match transition {
                Transition::Cancelled | Transition::CancelRequested => {
                    format!("the document is {} and cannot be cancelled", found.state)
                }
                Transition::RetryRequested => {
                    format!("only FAILED or CANCELLED documents can be retried; this one is {}", found.state)
                }
                Transition::ReindexQueued => format!("only READY documents are re-embedded; this one is {}", found.state),
                other => format!("the document is {}; {other} is not possible now", found.state),
            })
            .because("DOCUMENT_STATE"),
            LifecycleError::Database(error) => error.into(),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        tracing::warn!(%error, "no database connection");
        ApiError::Unavailable("database unavailable, try again".into())
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let reason = error.reason();
        let mut metadata = HashMap::new();
        let mut details = ErrorDetails::new();
        let (code, message) = match error.unreasoned() {
            ApiError::InvalidArgument(violations) => {
                let message = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                metadata.insert("fields".to_owned(), fields.join(","));
                details.set_bad_request(violations);
                (Code::InvalidArgument, message)
            }
            ApiError::Unauthenticated(message) => (Code::Unauthenticated, message),
            ApiError::PermissionDenied(message) => (Code::PermissionDenied, message),
            ApiError::NotFound(message) => (Code::NotFound, message),
            ApiError::AlreadyExists(message) => (Code::AlreadyExists, message),
            ApiError::FailedPrecondition(message) => (Code::FailedPrecondition, message),
            ApiError::ResourceExhausted { message, retry_after } => {
                metadata.insert("retry_after_ms".to_owned(), retry_after.as_millis().to_string());
                details.set_retry_info(Some(retry_after));
                (Code::ResourceExhausted, message)
            }
            ApiError::QuotaExceeded { message, violations } => {
                details.set_quota_failure(violations);
                (Code::ResourceExhausted, message)
            }
            ApiError::Unimplemented(message) => (Code::Unimplemented, message),
            ApiError::TooLarge(message) => (Code::ResourceExhausted, message),
            ApiError::DeadlineExceeded(message) => (Code::DeadlineExceeded, message),
            ApiError::Unavailable(message) => {
                let retry_after = std::time::Duration::from_secs(1);
                metadata.insert("retry_after_ms".to_owned(), retry_after.as_millis().to_string());
                details.set_retry_info(Some(retry_after));
                (Code::Unavailable, message)
            }
            ApiError::Internal(error) => {
                let reference = uuid::Uuid::new_v4();
                tracing::error!(%reference, error = format!("{error:#}"), "internal error");
                metadata.insert("reference".to_owned(), reference.to_string());
                (Code::Internal, format!("internal error (reference {reference})"))
            }
            ApiError::Because { .. } => unreachable!("unreasoned() removes every Because"),
        };
        // The call's trace, to quote with the reference (logs carry it too).
        if let Some(trace_id) = folio_core::trace::current_id() {
            metadata.insert("trace_id".to_owned(), trace_id);
        }
        details.set_error_info(reason, DOMAIN, metadata);
        Status::with_error_details(code, message, details)
    }
}

/// What RPC handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

//! The api-server's one error type and its one mapping to a gRPC status.
//!
//! Handlers return [`ApiError`]; `From<ApiError> for Status` decides the code and
//! attaches google.rpc details (BadRequest field violations, RetryInfo). Internal
//! errors are logged with a reference and answered without their text, so no
//! SQL, broker or file-system detail reaches a client.

use folio_db::documents::lifecycle::{LifecycleError, Transition};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

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
    /// A dependency is unreachable; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: a bug or an unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A single invalid field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::NotFound(id) => ApiError::NotFound(format!("no document {id}")),
            LifecycleError::Refused { transition, found } => ApiError::FailedPrecondition(match transition {
                Transition::Cancelled | Transition::CancelRequested => {
                    format!("the document is {} and cannot be cancelled", found.state)
                }
                Transition::RetryRequested => {
                    format!("only FAILED or CANCELLED documents can be retried; this one is {}", found.state)
                }
                Transition::ReindexQueued => format!("only READY documents are re-embedded; this one is {}", found.state),
                other => format!("the document is {}; {other} is not possible now", found.state),
            }),
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
        match error {
            ApiError::InvalidArgument(violations) => {
                let message = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                Status::with_error_details(Code::InvalidArgument, message, ErrorDetails::with_bad_request(violations))
            }
            ApiError::Unauthenticated(message) => Status::unauthenticated(message),
            ApiError::PermissionDenied(message) => Status::permission_denied(message),
            ApiError::NotFound(message) => Status::not_found(message),
            ApiError::AlreadyExists(message) => Status::already_exists(message),
            ApiError::FailedPrecondition(message) => Status::failed_precondition(message),
            ApiError::ResourceExhausted { message, retry_after } => {
                Status::with_error_details(Code::ResourceExhausted, message, ErrorDetails::with_retry_info(Some(retry_after)))
            }
            ApiError::Unavailable(message) => Status::with_error_details(
                Code::Unavailable,
                message,
                ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
            ),
            ApiError::Internal(error) => {
                let reference = uuid::Uuid::new_v4();
                tracing::error!(%reference, error = format!("{error:#}"), "internal error");
                Status::internal(format!("internal error (reference {reference})"))
            }
        }
    }
}

/// What RPC handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

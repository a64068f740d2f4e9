//! What a failed command tells its caller: the exit code (one per gRPC status,
//! so a script can tell "not found" from "not allowed" without reading text)
//! and the message on standard error, with the status' details (ErrorInfo's
//! reason, BadRequest's field violations, RetryInfo's delay) when the server
//! sent them.

use std::fmt::Write as _;

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Success.
pub const OK: u8 = 0;
/// An error on this side: a file that cannot be read or written, a bad value.
pub const LOCAL: u8 = 1;
/// The command line itself is wrong (clap's own code).
pub const USAGE: u8 = 2;
/// `--watch` saw a document end FAILED or CANCELLED.
pub const DOCUMENT_FAILED: u8 = 3;
/// A gRPC status `code` exits with `STATUS_BASE + code`.
pub const STATUS_BASE: u8 = 10;

/// The table `--help` and the README show.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   success
  1   a local error (a file, the credentials file, a bad value)
  2   usage error (unknown command or flag, missing argument)
  3   --watch: a document ended FAILED or CANCELLED
  10+ the server's gRPC status: 10 + its code
      11 CANCELLED            17 PERMISSION_DENIED     23 INTERNAL
      12 UNKNOWN              18 RESOURCE_EXHAUSTED    24 UNAVAILABLE (also: server unreachable)
      13 INVALID_ARGUMENT     19 FAILED_PRECONDITION   25 DATA_LOSS
      14 DEADLINE_EXCEEDED    20 ABORTED               26 UNAUTHENTICATED (also: not logged in)
      15 NOT_FOUND            21 OUT_OF_RANGE
      16 ALREADY_EXISTS       22 UNIMPLEMENTED";

/// Why a command failed.
#[derive(Debug)]
pub enum Error {
    /// The server answered with an error status (or could not be reached,
    /// which is UNAVAILABLE).
    Status(Status),
    /// Something on this side.
    Local(String),
    /// A watched document ended FAILED or CANCELLED; its line is printed.
    DocumentFailed(String),
}

impl Error {
    pub fn local(message: impl Into<String>) -> Self {
        Error::Local(message.into())
    }

    /// The process' exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Status(status) => status_exit_code(status.code()),
            Error::Local(_) => LOCAL,
            Error::DocumentFailed(_) => DOCUMENT_FAILED,
        }
    }

    /// The message for standard error, one fact a line.
    pub fn render(&self) -> String {
        match self {
            Error::Local(message) | Error::DocumentFailed(message) => format!("error: {message}"),
            Error::Status(status) => render_status(status),
        }
    }

    /// The error as JSON, for `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Error::Local(message) | Error::DocumentFailed(message) => serde_json::json!({
                "error": { "message": message, "exit_code": self.exit_code() }
            }),
            Error::Status(status) => {
                let details = status.get_error_details();
                let fields: Vec<_> = details
                    .bad_request()
                    .map(|bad| {
                        bad.field_violations
                            .iter()
                            .map(|v| serde_json::json!({ "field": v.field, "description": v.description }))
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::json!({
                    "error": {
                        "code": code_name(status.code()),
                        "message": status.message(),
                        "reason": details.error_info().map(|info| info.reason.clone()),
                        "field_violations": fields,
                        "exit_code": self.exit_code(),
                    }
                })
            }
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        Error::Status(status)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Local(error.to_string())
    }
}

/// `STATUS_BASE` plus the code's number; OK (never an error) exits 0.
pub fn status_exit_code(code: Code) -> u8 {
    match code {
        Code::Ok => OK,
        other => STATUS_BASE + other as u8,
    }
}

/// The code's proto name, e.g. "NOT_FOUND".
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn render_status(status: &Status) -> String {
    let mut out = format!("error: {}: {}", code_name(status.code()), status.message());
    let details = status.get_error_details();
    if let Some(info) = details.error_info() {
        let _ = write!(out, "\n  reason: {}", info.reason);
        let mut metadata: Vec<_> = info.metadata.iter().collect();
        metadata.sort();
        for (key, value) in metadata {
            let _ = write!(out, "\n  {key}: {value}");
        }
    }
    if let Some(bad) = details.bad_request() {
        for violation in &bad.field_violations {
            let _ = write!(out, "\n  field {}: {}", violation.field, violation.description);
        }
    }
    if let Some(quota) = details.quota_failure() {
        for violation in &quota.violations {
            let _ = write!(out, "\n  quota {}: {}", violation.subject, violation.description);
        }
    }
    if let Some(delay) = details.retry_info().and_then(|retry| retry.retry_delay) {
        let _ = write!(out, "\n  retry after: {:.1} s", delay.as_secs_f64());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_code_has_its_own_exit_code() {
        let codes = [
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Unauthenticated,
        ];
        let exits: std::collections::BTreeSet<u8> = codes.iter().map(|&c| status_exit_code(c)).collect();
        assert_eq!(exits.len(), codes.len());
        assert!(exits.iter().all(|&e| e > DOCUMENT_FAILED));
        for code in codes {
            let line = format!("{} {}", status_exit_code(code), code_name(code));
            assert!(EXIT_CODES_HELP.contains(&line), "the help lists {line}");
        }
    }
}

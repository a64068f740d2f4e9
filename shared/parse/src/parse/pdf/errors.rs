//! How lopdf's failures, and a stream over `max_pdf_stream_bytes`, become
//! [`ParseError`]s.

use lopdf::DecompressError;

use super::FORMAT;
use crate::parse::ParseError;

pub(super) fn corrupt(detail: impl Into<String>) -> ParseError {
    ParseError::Corrupt {
        format: FORMAT,
        detail: detail.into(),
    }
}

pub(super) fn stream_limit(limit: usize) -> ParseError {
    ParseError::LimitExceeded(format!("a PDF stream inflates to more than {limit} bytes"))
}

/// Maps a lopdf error: a size-limit violation is a limit, a failed decryption
/// means a password is needed, anything else is corruption.
pub(super) fn pdf_error(error: lopdf::Error, limit: usize) -> ParseError {
    match error {
        lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. }) => stream_limit(limit),
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword | lopdf::Error::UnsupportedSecurityHandler(_) => {
            ParseError::Encrypted { format: FORMAT }
        }
        other => corrupt(other.to_string()),
    }
}

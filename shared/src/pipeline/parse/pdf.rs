//! Placeholder until the pdf parser lands; refuses every input.

use super::{Budget, ParseError, ParsedDocument};

pub fn parse(_bytes: &[u8], _budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    Err(ParseError::Corrupt {
        format: "pdf",
        detail: "this build cannot parse pdf yet".into(),
    })
}

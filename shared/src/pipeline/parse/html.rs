//! Placeholder until the html parser lands; refuses every input.

use super::{Budget, ParseError, ParsedDocument};

pub fn parse(_bytes: &[u8], _budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    Err(ParseError::Corrupt {
        format: "html",
        detail: "this build cannot parse html yet".into(),
    })
}

//! Placeholder until the docx parser lands; refuses every input.

use super::{Budget, ParseError, ParsedDocument};

pub fn parse(_bytes: &[u8], _budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    Err(ParseError::Corrupt {
        format: "docx",
        detail: "this build cannot parse docx yet".into(),
    })
}

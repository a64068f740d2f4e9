//! Plain text: UTF-8 (a BOM is dropped), UTF-16 with a BOM, and Latin-1 for
//! bytes that are not valid UTF-8. Paragraphs (separated by blank lines) become
//! blocks; plain text has no headings.

use super::blocks::BlockBuilder;
use super::{Budget, ParseError, ParsedDocument};

/// Decodes text bytes: UTF-8 with or without BOM, UTF-16 LE/BE with BOM, or
/// Latin-1 as the fallback (every byte is a character there).
pub fn decode(bytes: &[u8]) -> Result<String, ParseError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8(rest.to_vec()).map_err(|e| corrupt(format!("invalid UTF-8 after a UTF-8 BOM: {e}")));
    }
    let utf16 = |rest: &[u8], big_endian: bool| -> Result<String, ParseError> {
        if !rest.len().is_multiple_of(2) {
            return Err(corrupt("UTF-16 text with an odd number of bytes".into()));
        }
        let units = rest.chunks_exact(2).map(|pair| {
            let pair = [pair[0], pair[1]];
            if big_endian {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| corrupt(format!("invalid UTF-16: {e}")))
    };
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, false);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, true);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

fn corrupt(detail: String) -> ParseError {
    ParseError::Corrupt { format: "text", detail }
}

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    let text = decode(bytes)?;
    let mut builder = BlockBuilder::new(budget);
    for paragraph in text.replace("\r\n", "\n").split("\n\n") {
        builder.budget().check_time()?;
        builder.paragraph(paragraph)?;
    }
    Ok(ParsedDocument {
        title: None,
        pages: None,
        blocks: builder.finish()?,
        ..ParsedDocument::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Limits;

    fn run(bytes: &[u8]) -> Vec<String> {
        parse(bytes, &mut Budget::new(&Limits::default()))
            .unwrap()
            .blocks
            .into_iter()
            .map(|b| b.text)
            .collect()
    }

    #[test]
    fn paragraphs_become_blocks_in_every_encoding() {
        assert_eq!(
            run(b"\xEF\xBB\xBFfirst  line\nstill first\n\nsecond"),
            ["first line still first", "second"]
        );
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("Grüße\n\nκόσμε".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(run(&utf16le), ["Grüße", "κόσμε"]);
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("日本語".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(run(&utf16be), ["日本語"]);
        assert_eq!(run(b"caf\xE9 cr\xE8me"), ["café crème"], "Latin-1 fallback");
    }

    #[test]
    fn the_text_budget_is_enforced() {
        let limits = Limits {
            max_text_bytes: 10,
            ..Limits::default()
        };
        let error = parse(b"far more than ten bytes of text", &mut Budget::new(&limits)).unwrap_err();
        assert_eq!(error.code(), "LIMIT_EXCEEDED");
    }
}

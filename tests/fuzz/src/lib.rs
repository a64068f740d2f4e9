//! What the fuzz targets share: the limits parsers run under while fuzzed
//! (smaller than production's, so one input never takes seconds) and a check
//! that every parse result is well formed.

use std::time::Duration;

use folio_parse::parse::{self, Format, Limits, ParsedDocument};

/// Limits small enough that a slow input shows as a timeout, not a stall.
pub fn limits() -> Limits {
    Limits {
        max_text_bytes: 1 << 20,
        max_inflated_bytes: 16 << 20,
        max_pdf_stream_bytes: 4 << 20,
        max_sheet_cells: 1 << 18,
        time_budget: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// Parses `data` as `format`; an error is a fine answer to garbage, a panic,
/// an abort or a hang is not. What comes back must keep the parser's promises.
pub fn parse(format: Format, data: &[u8]) {
    let limits = limits();
    if let Ok(document) = parse::parse(format, data, &limits) {
        check(&document, &limits);
    }
}

fn check(document: &ParsedDocument, limits: &Limits) {
    let text: usize = document.blocks.iter().map(|b| b.text.len()).sum();
    assert!(text <= limits.max_text_bytes, "{text} bytes of text over the limit");
    for block in &document.blocks {
        assert!(!block.text.trim().is_empty(), "an empty block");
        if let (Some(page), Some(pages)) = (block.page, document.pages) {
            assert!(page >= 1 && page <= pages, "block on page {page} of {pages}");
        }
    }
}

//! PDF: the text of each page, split into paragraphs, with the page number on
//! every block. Pages with (almost) no text are listed as `textless_pages`:
//! a scanned page is an image, and the worker reads it by OCR. The title comes from the document information dictionary, and
//! the outline (bookmarks), when there is one, gives the section path (by the
//! rules of [`BlockBuilder`], a bookmark's nesting being its level): a bookmark
//! takes effect at the paragraph on its page that starts with its title, or,
//! when no paragraph there does, at the top of the next page.
//!
//! lopdf reads the file. It was chosen over pdf-extract and pdf_oxide by
//! measurement on five PDFs that Debian packages ship: with the layout below it
//! agrees with `pdftotext` as well as the best of them, runs several times
//! faster, is the only one that bounds every inflation per call, and brings a
//! third of pdf_oxide's dependencies.
//!
//! Every stream it inflates is bounded by `max_pdf_stream_bytes` while it is
//! inflated: object and cross-reference streams through
//! `LoadOptions::max_decompressed_size`, page contents through
//! `get_page_content_with_limit` (the page's streams together), form XObjects
//! through `decompressed_content_with_limit`, and `/ToUnicode` maps through
//! `get_font_encoding_with_limit`. Images and embedded font programs are never
//! inflated. A stream over the bound is a [`ParseError::LimitExceeded`], and so
//! are page contents and forms that together inflate past `max_inflated_bytes`
//! and a file of more than `max_pdf_objects` objects. Nesting is bounded too:
//! lopdf's parser refuses arrays, dictionaries and strings nested more than
//! 100 deep, and the content walk bounds forms and `q` (see `content`).
//!
//! lopdf's own `extract_text` concatenates the strings of a page without
//! looking at where they are drawn, which glues words together in files that
//! position each word (Ghostscript's, for instance). So this module walks the
//! content operators itself, tracks the text and transformation matrices and
//! the glyph widths, and puts a space where the pen jumps forward, a line break
//! where it moves down a line and a paragraph break where it moves down further
//! than a line or back up.
//!
//! A file that needs a password to open is [`ParseError::Encrypted`]; one that
//! is encrypted with an empty user password (the "owner password only" files
//! that any viewer opens) is decrypted and read. lopdf must not take the worker
//! down on hostile input, so the whole parse runs under `catch_unwind` and a
//! panic is reported as a corrupt file.
//!
//! Files: `content` walks a page's operators (graphics state, forms) with the
//! glyph metrics of `fonts` and the matrices of `matrix`, `layout` turns where
//! strings are drawn into paragraphs, `outline` reads the bookmarks, and
//! `errors` maps lopdf's failures (and the stream bound) to [`ParseError`]s.

mod content;
mod errors;
mod fonts;
mod layout;
mod matrix;
mod outline;

#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};

use lopdf::{Document, LoadOptions};

use super::blocks::BlockBuilder;
use super::ocr::MIN_PAGE_CHARACTERS;
use super::{Budget, ParseError, ParsedDocument, normalize_whitespace};
use errors::{corrupt, pdf_error};
use outline::{outline, starts_with_title};

const FORMAT: &str = "pdf";

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    // `AssertUnwindSafe` is sound here: after a panic the budget is only read
    // again by the caller, and a half-updated text count errs on the safe side.
    match catch_unwind(AssertUnwindSafe(|| parse_document(bytes, budget))) {
        Ok(result) => result,
        Err(_) => Err(corrupt("the PDF reader failed on this file")),
    }
}

fn parse_document(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    // Without the signature lopdf would try to rebuild a cross-reference table
    // from arbitrary bytes; a PDF has it within its first kilobyte.
    if !bytes[..bytes.len().min(1024)].windows(5).any(|w| w == b"%PDF-") {
        return Err(corrupt("no %PDF- header"));
    }
    let limit = budget.limits().max_pdf_stream_bytes;
    let options = LoadOptions {
        max_decompressed_size: Some(limit),
        ..LoadOptions::default()
    };
    let document = Document::load_mem_with_options(bytes, options).map_err(|e| pdf_error(e, limit))?;
    let max_objects = budget.limits().max_pdf_objects;
    if document.objects.len() > max_objects {
        return Err(ParseError::LimitExceeded(format!(
            "the PDF has {} objects, more than {max_objects}",
            document.objects.len()
        )));
    }
    // lopdf loads a file it cannot decrypt without failing, leaving its
    // strings and streams encrypted; only a successful decryption sets the
    // encryption state.
    if document.is_encrypted() && !document.was_encrypted() {
        return Err(ParseError::Encrypted { format: FORMAT });
    }
    budget.check_time()?;
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(corrupt("the document has no pages"));
    }
    let title = info_title(&document);
    if let Some(title) = &title {
        budget.take_text(title)?;
    }
    let outline = outline(&document);
    let mut next_bookmark = 0;
    let mut builder = BlockBuilder::new(budget);
    let mut textless_pages = Vec::new();
    for (&number, &page_id) in &pages {
        builder.budget().check_time()?;
        let paragraphs = content::page_text(&document, page_id, builder.budget())?;
        let characters: usize = paragraphs.iter().map(|p| p.chars().filter(|c| !c.is_whitespace()).count()).sum();
        if characters < MIN_PAGE_CHARACTERS {
            textless_pages.push(number);
        }
        builder.start_page(number);
        // The bookmarks that point before this page apply from its top.
        while let Some(bookmark) = outline.get(next_bookmark).filter(|b| b.page < number) {
            builder.heading(bookmark.level, &bookmark.title)?;
            next_bookmark += 1;
        }
        for paragraph in paragraphs {
            // A bookmark on this page applies from the paragraph that starts with
            // its title.
            while let Some(bookmark) = outline
                .get(next_bookmark)
                .filter(|b| b.page == number && starts_with_title(&paragraph, &b.title))
            {
                builder.heading(bookmark.level, &bookmark.title)?;
                next_bookmark += 1;
            }
            builder.paragraph(&paragraph)?;
        }
    }
    Ok(ParsedDocument {
        title,
        pages: Some(u32::try_from(pages.len()).unwrap_or(u32::MAX)),
        blocks: builder.finish()?,
        textless_pages,
        ..ParsedDocument::default()
    })
}

/// The `/Title` of the document information dictionary.
fn info_title(document: &Document) -> Option<String> {
    let info = document.trailer.get(b"Info").ok()?;
    let (_, info) = document.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = document.dereference(title).ok()?;
    let title = normalize_whitespace(&lopdf::decode_text_string(title).ok()?);
    (!title.is_empty()).then_some(title)
}

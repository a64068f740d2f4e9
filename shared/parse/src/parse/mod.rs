//! Parsing: bytes of a supported format into text blocks that keep the
//! document's structure (the heading path of each block and, for PDF, its
//! page; for PPTX, its slide). One file or folder per format; [`parse`] is the
//! registration list, [`zip`] and [`xml`] what the zip-based formats share. Every
//! parser hands its headings, paragraphs and table cells to one
//! [`blocks::BlockBuilder`], so section paths follow the same rules in every
//! format.
//!
//! Every parser runs under [`Limits`]; a violation, a corrupt or an encrypted
//! file is a [`ParseError`] that the worker treats as permanent (never retried).

pub mod blocks;
pub mod docx;
pub mod epub;
pub mod html;
pub mod image;
pub mod markdown;
pub mod ocr;
pub mod odt;
pub mod pdf;
pub mod pptx;
pub mod spreadsheet;
pub mod text;
pub mod xml;
pub mod zip;

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The formats folio parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    /// A PNG, JPEG, TIFF (one page or many) or WebP image: its text comes
    /// from OCR (see [`ocr`]).
    Image,
    Odt,
    Xlsx,
    Ods,
    Pptx,
    Epub,
}

impl Format {
    /// Every format, in the order they were added.
    pub const ALL: [Format; 11] = [
        Format::Text,
        Format::Markdown,
        Format::Html,
        Format::Pdf,
        Format::Docx,
        Format::Image,
        Format::Odt,
        Format::Xlsx,
        Format::Ods,
        Format::Pptx,
        Format::Epub,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Image => "image",
            Format::Odt => "odt",
            Format::Xlsx => "xlsx",
            Format::Ods => "ods",
            Format::Pptx => "pptx",
            Format::Epub => "epub",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// A run of text and where it stands in the document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    /// The headings above this block, outermost first (empty before the first
    /// heading).
    pub section_path: Vec<String>,
    /// The 1-based page the block is on (PDF), or its slide's number (PPTX).
    pub page: Option<u32>,
    /// The text, whitespace-normalised within lines; paragraphs are separate
    /// blocks. For a table row: its non-empty cells joined by `" | "` (what
    /// is embedded and searched).
    pub text: String,
    /// Set when the block is one row of a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<TableRow>,
}

/// Where a table row stands in its table: the row's block holds its text, this
/// holds its cells, so a table can be rendered and chunked as a table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableRow {
    /// Which table of the document this row belongs to (0-based, in reading
    /// order).
    pub table: u32,
    /// Whether this is the table's header row.
    pub header: bool,
    /// The cells, whitespace-normalised; empty cells kept so columns line up.
    pub cells: Vec<String>,
}

/// A parsed document.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParsedDocument {
    /// The document's own title, if it declares one (HTML `<title>`, OOXML core
    /// properties, ODF metadata, the EPUB package's `dc:title`, PDF info
    /// dictionary, the first Markdown H1).
    pub title: Option<String>,
    /// The number of pages (PDF) or slides (PPTX).
    pub pages: Option<u32>,
    /// The text in reading order.
    pub blocks: Vec<Block>,
    /// PDF: the pages whose text layer is unusable (fewer than
    /// [`ocr::MIN_PAGE_CHARACTERS`] characters besides whitespace), which the
    /// worker renders and reads by OCR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub textless_pages: Vec<u32>,
    /// The pages whose text came from OCR, once the worker has read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<ocr::OcrReport>,
}

impl ParsedDocument {
    /// Total characters of text.
    pub fn characters(&self) -> usize {
        self.blocks.iter().map(|b| b.text.chars().count()).sum()
    }
}

/// Bounds every parser honours. They travel to the parsing child process
/// (`folio-worker parse`) as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Total extracted text, in bytes.
    pub max_text_bytes: usize,
    /// Zip-based formats (DOCX, ODT, XLSX, ODS, PPTX, EPUB): entries in the
    /// zip archive.
    pub max_zip_entries: usize,
    /// Zip-based formats: inflated size / compressed size of any entry.
    pub max_compression_ratio: u64,
    /// Zip-based formats: total inflated size of the entries read (for XLSX
    /// and ODS, whose library reads the archive itself, of all entries);
    /// PDF: total size of the
    /// streams decompressed after loading (page contents and forms), which a file can make far larger than itself by drawing one
    /// stream from every page.
    pub max_inflated_bytes: u64,
    /// PDF: size of any one decompressed stream.
    pub max_pdf_stream_bytes: usize,
    /// PDF: objects in the file (each costs memory once loaded).
    pub max_pdf_objects: usize,
    /// XLSX and ODS: cells of all sheets, counting the empty ones inside each
    /// sheet's used rows and columns (what the spreadsheet library would hold
    /// and the rows would carry). A sheet that repeats a cell or a row
    /// repeats its count.
    #[serde(default = "default_max_sheet_cells")]
    pub max_sheet_cells: u64,
    /// Wall time for one document.
    pub time_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_bytes: 64 << 20,
            max_zip_entries: 10_000,
            max_compression_ratio: 100,
            max_inflated_bytes: 512 << 20,
            max_pdf_stream_bytes: 64 << 20,
            max_pdf_objects: 1_000_000,
            max_sheet_cells: default_max_sheet_cells(),
            time_budget: Duration::from_secs(120),
        }
    }
}

fn default_max_sheet_cells() -> u64 {
    4_000_000
}

/// Why a document could not be parsed. Every variant is permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not a valid document of the format.
    #[error("corrupt {format} file: {detail}")]
    Corrupt { format: &'static str, detail: String },
    /// The document is encrypted or password-protected.
    #[error("encrypted {format} files are not supported")]
    Encrypted { format: &'static str },
    /// A limit was exceeded (zip bomb, runaway stream, too much text...).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// Parsing took longer than the time budget.
    #[error("parsing took longer than {0:?}")]
    TimedOut(Duration),
    /// More pages to read by OCR than a document may have.
    #[error("more than {max} pages to read by OCR")]
    TooManyPages { max: usize },
    /// An image page with more pixels than allowed (a decompression bomb, or
    /// a scan far finer than OCR needs).
    #[error("page {page} is {width}x{height} pixels, more than the limit of {max}")]
    ImageTooLarge { page: usize, width: u64, height: u64, max: u64 },
}

impl ParseError {
    /// A stable, machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Corrupt { .. } => "CORRUPT_FILE",
            ParseError::Encrypted { .. } => "ENCRYPTED_FILE",
            ParseError::LimitExceeded(_) => "LIMIT_EXCEEDED",
            ParseError::TimedOut(_) => "PARSE_TIME",
            ParseError::TooManyPages { .. } => "TOO_MANY_PAGES",
            ParseError::ImageTooLarge { .. } => "IMAGE_TOO_LARGE",
        }
    }
}

/// Tracks the time, text and inflation budgets while a parser runs.
#[derive(Debug)]
pub struct Budget<'a> {
    limits: &'a Limits,
    started: Instant,
    text_bytes: usize,
    /// Behind a `Cell` so that walks holding the budget by shared reference
    /// (a PDF page's) can count what they inflate.
    inflated: Cell<u64>,
}

impl<'a> Budget<'a> {
    pub fn new(limits: &'a Limits) -> Self {
        Budget {
            limits,
            started: Instant::now(),
            text_bytes: 0,
            inflated: Cell::new(0),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        self.limits
    }

    /// Errs once the time budget is spent; call it in every loop.
    pub fn check_time(&self) -> Result<(), ParseError> {
        if self.started.elapsed() > self.limits.time_budget {
            return Err(ParseError::TimedOut(self.limits.time_budget));
        }
        Ok(())
    }

    /// Counts `text` against the text budget.
    pub fn take_text(&mut self, text: &str) -> Result<(), ParseError> {
        self.take_text_bytes(text.len())
    }

    /// Counts `bytes` against the text budget: the size of what a parse
    /// result keeps that is not text as such, such as a table's empty cells.
    pub fn take_text_bytes(&mut self, bytes: usize) -> Result<(), ParseError> {
        self.text_bytes = self.text_bytes.saturating_add(bytes);
        if self.text_bytes > self.limits.max_text_bytes {
            return Err(self.text_exceeded());
        }
        self.check_time()
    }

    /// Errs if `bytes` of text gathered for one block, not yet counted, are
    /// already more than the whole text budget: a long run of text without
    /// markup is refused while it grows, before it is copied again.
    pub fn check_gathered(&self, bytes: usize) -> Result<(), ParseError> {
        if bytes > self.limits.max_text_bytes {
            return Err(self.text_exceeded());
        }
        Ok(())
    }

    /// Counts `bytes` decompressed against `max_inflated_bytes`.
    pub fn take_inflated(&self, bytes: usize) -> Result<(), ParseError> {
        let total = self.inflated.get().saturating_add(bytes as u64);
        self.inflated.set(total);
        if total > self.limits.max_inflated_bytes {
            return Err(ParseError::LimitExceeded(format!(
                "more than {} bytes decompressed in all",
                self.limits.max_inflated_bytes
            )));
        }
        Ok(())
    }

    fn text_exceeded(&self) -> ParseError {
        ParseError::LimitExceeded(format!("more than {} bytes of text", self.limits.max_text_bytes))
    }
}

/// Parses `bytes` as `format`.
pub fn parse(format: Format, bytes: &[u8], limits: &Limits) -> Result<ParsedDocument, ParseError> {
    let mut budget = Budget::new(limits);
    match format {
        Format::Text => text::parse(bytes, &mut budget),
        Format::Markdown => markdown::parse(bytes, &mut budget),
        Format::Html => html::parse(bytes, &mut budget),
        Format::Pdf => pdf::parse(bytes, &mut budget),
        Format::Docx => docx::parse(bytes, &mut budget),
        Format::Image => image::parse(bytes, &mut budget),
        Format::Odt => odt::parse(bytes, &mut budget),
        Format::Xlsx => spreadsheet::parse_xlsx(bytes, &mut budget),
        Format::Ods => spreadsheet::parse_ods(bytes, &mut budget),
        Format::Pptx => pptx::parse(bytes, &mut budget),
        Format::Epub => epub::parse(bytes, &mut budget),
    }
}

/// Collapses runs of whitespace to single spaces and trims.
pub fn normalize_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;

//! Settings of uploads and the pipeline.

use std::{path::PathBuf, time::Duration};

use super::{BlobOptions, ConfigError, blobs, vars::Vars};

/// `FOLIO_MAX_UPLOAD_BYTES`'s built-in default and its largest value, which
/// also bound the run-time setting `max_upload_bytes` (the smallest is 1).
pub const MAX_UPLOAD_BYTES_DEFAULT: u64 = 100 << 20;
pub const MAX_UPLOAD_BYTES_MAX: u64 = 1 << 40;

/// Settings of uploads and the pipeline.
#[derive(Clone, Debug)]
pub struct DocumentsConfig {
    /// `FOLIO_BLOB_URL`: where blobs go (`file://<directory>` or
    /// `s3://<bucket>[/<prefix>]`).
    pub blob_url: String,
    /// The object store's settings from `AWS_*` variables (see
    /// [`BLOB_VARIABLES`](super::BLOB_VARIABLES)), for `s3://`.
    pub blob_options: BlobOptions,
    /// `FOLIO_MAX_UPLOAD_BYTES`: the largest document accepted, until an admin
    /// sets `max_upload_bytes` (SystemService.UpdateSettings).
    pub max_upload_bytes: u64,
    /// `FOLIO_INLINE_UPLOAD_BYTES`: the largest `CreateDocument` content.
    pub max_inline_bytes: u64,
    /// `FOLIO_CHUNK_TOKENS`: the most tokens (words) in a chunk.
    pub chunk_tokens: usize,
    /// `FOLIO_CHUNK_OVERLAP`: tokens a chunk repeats from the one before.
    pub chunk_overlap: usize,
    /// `FOLIO_EMBED_BATCH`: chunks embedded per batch (cancel is checked between).
    pub embed_batch: usize,
    /// `FOLIO_PARSE_TIMEOUT_SECS`: the time budget of parsing one document,
    /// in CPU time and in wall-clock time alike.
    pub parse_timeout: Duration,
    /// `FOLIO_PARSE_MEMORY_MB`: the address space of the process that parses
    /// one document.
    pub parse_memory_bytes: u64,
    /// `FOLIO_PARSER_PATH`: the program the worker runs as `<program> parse`
    /// to parse a document (by default the worker's own executable).
    pub parser_path: Option<PathBuf>,
    /// `FOLIO_SEGMENT_CHUNKS`: the segment builder seals the open segment
    /// (new chunks, scanned exactly) into one with its own HNSW graph and RUM
    /// index once it holds this many chunks.
    pub segment_chunks: i64,
    /// `FOLIO_SEGMENT_QUIET_SECS`: it also seals a smaller open segment that
    /// has not grown for this long (ingestion paused).
    pub segment_quiet: Duration,
    /// `FOLIO_SEGMENT_BUILD_MEMORY_MB`: `maintenance_work_mem` of the builder's
    /// session (an HNSW build slows down several times once its graph does
    /// not fit).
    pub segment_build_memory_mb: u64,
    /// How scanned pages and images are read.
    pub ocr: OcrConfig,
}

/// Settings of OCR (Tesseract, a child process per page).
#[derive(Clone, Debug)]
pub struct OcrConfig {
    /// `FOLIO_OCR_LANGUAGES`: Tesseract's language names joined by `+`
    /// (`eng`, `eng+deu`); each must be installed on the worker.
    pub languages: String,
    /// `FOLIO_OCR_DPI`: the resolution PDF pages are rendered at.
    pub dpi: u32,
    /// `FOLIO_OCR_MAX_PIXELS`: the most pixels of one image page; a PDF page
    /// larger than this at `dpi` is rendered at a lower resolution.
    pub max_pixels: u64,
    /// `FOLIO_OCR_MAX_PAGES`: the most pages of one document read by OCR.
    pub max_pages: usize,
    /// `FOLIO_OCR_PAGE_TIMEOUT_SECS`: the time for one page, rendering and
    /// reading, in CPU and wall-clock time (`OCR_TIME` past it).
    pub page_timeout: Duration,
    /// `FOLIO_OCR_MEMORY_MB`: the address space of each OCR child process.
    pub memory_bytes: u64,
    /// `FOLIO_OCR_PASSES`: 1 reads each page once (Tesseract's global, Otsu,
    /// binarisation); 2 reads it again with the local (Sauvola) one and keeps
    /// the better reading, for about 1.2 to 1.7 times the time.
    pub passes: u32,
}

impl DocumentsConfig {
    pub(super) fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(DocumentsConfig {
            blob_url: blobs::blob_url(vars)?,
            blob_options: BlobOptions::from_vars(vars),
            max_upload_bytes: vars.bounded("FOLIO_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES_DEFAULT, 1, MAX_UPLOAD_BYTES_MAX)?,
            max_inline_bytes: vars.bounded("FOLIO_INLINE_UPLOAD_BYTES", 3 << 20, 1, 3 << 20)?,
            chunk_tokens: vars.bounded("FOLIO_CHUNK_TOKENS", 256, 16, 8192)?,
            chunk_overlap: vars.bounded("FOLIO_CHUNK_OVERLAP", 32, 0, 4096)?,
            embed_batch: vars.bounded("FOLIO_EMBED_BATCH", 64, 1, 4096)?,
            parse_timeout: vars.secs("FOLIO_PARSE_TIMEOUT_SECS", 120, 1, 3600)?,
            parse_memory_bytes: vars.bounded("FOLIO_PARSE_MEMORY_MB", 2048u64, 64, 1 << 20)? << 20,
            parser_path: vars.get("FOLIO_PARSER_PATH").map(PathBuf::from),
            segment_chunks: vars.bounded("FOLIO_SEGMENT_CHUNKS", 4096, 1, 100_000_000)?,
            segment_quiet: vars.secs("FOLIO_SEGMENT_QUIET_SECS", 5, 0, 86_400)?,
            segment_build_memory_mb: vars.bounded("FOLIO_SEGMENT_BUILD_MEMORY_MB", 1024u64, 64, 1 << 20)?,
            ocr: OcrConfig {
                languages: vars.get("FOLIO_OCR_LANGUAGES").unwrap_or_else(|| "eng".into()),
                dpi: vars.bounded("FOLIO_OCR_DPI", 300u32, 72, 1200)?,
                max_pixels: vars.bounded("FOLIO_OCR_MAX_PIXELS", 50_000_000u64, 10_000, 1 << 34)?,
                max_pages: vars.bounded("FOLIO_OCR_MAX_PAGES", 500usize, 1, 100_000)?,
                page_timeout: vars.secs("FOLIO_OCR_PAGE_TIMEOUT_SECS", 60, 1, 3600)?,
                memory_bytes: vars.bounded("FOLIO_OCR_MEMORY_MB", 1024u64, 64, 1 << 20)? << 20,
                passes: vars.bounded("FOLIO_OCR_PASSES", 1u32, 1, 2)?,
            },
        })
    }
}

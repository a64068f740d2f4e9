//! The document pipeline's first stages, free of any transport, runtime or
//! database: format detection, parsing and chunking. Everything here is
//! synchronous (the worker runs it on a blocking thread, or in the child
//! process that parses untrusted bytes) and depends on neither tokio nor diesel.
//!
//! # Layout
//!
//! - [`detect`]: a file's format from its magic bytes and name; the api-server
//!   uses it to refuse what cannot be parsed before storing it.
//! - [`parse`]: one file per format and the `parse` registration list, all
//!   under `Limits`; the api-server also renders downloads from its
//!   `ParsedDocument`.
//! - [`chunk`]: structure-aware, token-bounded chunks with overlap (counted
//!   in words, or in a model's tokens within its window), and
//!   `with_headings`, the text embedders see.

pub mod chunk;
pub mod detect;
pub mod parse;

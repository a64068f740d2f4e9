//! The document pipeline's stages, free of any transport: format detection,
//! parsing, chunking and embedding. The worker runs them; the api-server uses
//! detection to refuse what cannot be parsed before storing it.

pub mod chunk;
pub mod detect;
pub mod embed;
pub mod parse;

//! The document pipeline's stages, free of any transport: format detection,
//! parsing, chunking, embedding, and the reranking of search results. The
//! worker runs them; the api-server uses detection to refuse what cannot be
//! parsed before storing it. `remote` is the HTTP client the model-server
//! providers of `embed` and `rerank` share.

pub mod chunk;
pub mod detect;
pub mod embed;
pub mod parse;
pub mod remote;
pub mod rerank;

//! Embedding: the [`Embedder`] trait and its providers, one file each. Chunks
//! go through `embed` in batches; the model's name and dimension are recorded
//! with the index so vectors of different models never mix.

pub mod hash;

use futures_util::future::BoxFuture;

/// Why a batch could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Worth retrying (timeouts, 429, 5xx).
    #[error("embedding provider unavailable: {0}")]
    Transient(String),
    /// Retrying will not help (bad request, wrong dimension).
    #[error("embedding failed: {0}")]
    Permanent(String),
}

/// Turns texts into vectors of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// The model's name, recorded with the index.
    fn model(&self) -> &str;
    /// The vectors' dimension.
    fn dimension(&self) -> usize;
    /// Embeds one batch; the result has one vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
}

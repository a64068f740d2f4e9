//! Embedding: the [`Embedder`] trait and its providers, one file each, and
//! [`from_config`], the registration list. Chunks go through `embed` in
//! batches; the model's name and dimension are recorded with the index so
//! vectors of different models never mix.
//!
//! Model names are stable, so the index can tell models apart:
//! `folio-hash-v1-<dimension>`, `openai:<FOLIO_EMBED_MODEL>`, and
//! `local:<last component of FOLIO_EMBED_MODEL_DIR>`.

pub mod hash;
pub mod local;
pub mod openai;
pub mod saved;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::remote::{Remote, RemoteError, Retry};
use folio_core::config::{ConfigError, EmbedderKind, ModelsConfig};

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

impl From<RemoteError> for EmbedError {
    fn from(error: RemoteError) -> Self {
        match error {
            RemoteError::Transient(message) => EmbedError::Transient(message),
            RemoteError::Permanent(message) => EmbedError::Permanent(message),
        }
    }
}

/// Turns texts into vectors of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// The model's name, recorded with the index.
    fn model(&self) -> &str;
    /// The vectors' dimension.
    fn dimension(&self) -> usize;
    /// Embeds one batch; the result has one vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
    /// The model's own tokens, where it reads a bounded window of them and
    /// folio can count them (a local model); None otherwise (`hash` reads
    /// everything, a remote model's tokenizer is not here).
    fn tokens(&self) -> Option<&dyn Tokens> {
        None
    }
    /// How much search's fusion should count a rank among this model's
    /// nearest neighbours against a rank among keyword matches (1: as much).
    /// 0.3 for a sentence-embedding model: with all-MiniLM-L6-v2, the best of
    /// 0.3, 0.6 and 1 on the relevance development set's tuning half
    /// (headings in the top 3: 98.5%, 98.0%, 98.0%; sentences: 97.9%, 97.3%,
    /// 97.9%; measured while the heading match still counted section
    /// numbers; BENCHMARKS.md, "Retrieval quality").
    fn vector_weight(&self) -> f64 {
        0.3
    }
}

/// How many of a model's tokens a text takes, and how many it reads.
pub trait Tokens: Send + Sync {
    /// The most tokens of one input the model reads, its special tokens
    /// ([CLS], [SEP]) left out; the rest is cut off.
    fn window(&self) -> usize;
    /// The tokens of `text`, special tokens left out.
    fn count(&self, text: &str) -> usize;
}

/// How chunks made for `embedder` are measured, with the chunk settings: what
/// a document records so a reindex finds the documents chunked otherwise.
/// `words 256/32`, or `local:all-MiniLM-L6-v2 tokens 256/32 in 254`.
pub fn chunking(embedder: &dyn Embedder, max_tokens: usize, overlap_tokens: usize) -> String {
    match embedder.tokens() {
        Some(tokens) => format!("{} tokens {max_tokens}/{overlap_tokens} in {}", embedder.model(), tokens.window()),
        None => format!("words {max_tokens}/{overlap_tokens}"),
    }
}

/// The embedder the settings choose. A local model is loaded here (blocking,
/// about a second), so a model that cannot be loaded stops start-up with one
/// line naming the setting.
pub fn from_config(config: &ModelsConfig) -> Result<Arc<dyn Embedder>, ConfigError> {
    Ok(match config.embedder {
        EmbedderKind::Hash => Arc::new(hash::HashEmbedder::new(config.embed_dimension)),
        EmbedderKind::OpenAi => {
            let (url, model) = config.embed_url.as_deref().zip(config.embed_model.as_deref()).ok_or(ConfigError {
                variable: "FOLIO_EMBED_URL",
                problem: "FOLIO_EMBED_URL and FOLIO_EMBED_MODEL are needed by FOLIO_EMBEDDER=openai".into(),
            })?;
            let remote = Remote::new(
                format!("{url}/v1/embeddings"),
                config.embed_api_key.clone(),
                config.embed_timeout,
                config.embed_concurrency,
                Retry::default(),
            )
            .map_err(|problem| ConfigError {
                variable: "FOLIO_EMBED_URL",
                problem,
            })?;
            Arc::new(openai::OpenAiEmbedder::new(
                remote,
                model,
                config.embed_dimension,
                config.embed_max_batch,
            ))
        }
        EmbedderKind::Local => {
            let dir = config.embed_model_dir.as_deref().ok_or(ConfigError {
                variable: "FOLIO_EMBED_MODEL_DIR",
                problem: "is not set but FOLIO_EMBEDDER=local needs it".into(),
            })?;
            let embedder =
                local::LocalEmbedder::load(dir, config.embed_max_batch, config.embed_concurrency).map_err(|problem| ConfigError {
                    variable: "FOLIO_EMBED_MODEL_DIR",
                    problem: format!("cannot load a model from {}: {problem}", dir.display()),
                })?;
            if embedder.dimension() != config.embed_dimension {
                return Err(ConfigError {
                    variable: "FOLIO_EMBED_DIMENSION",
                    problem: format!(
                        "is {} but the model in {} makes vectors of {}",
                        config.embed_dimension,
                        dir.display(),
                        embedder.dimension()
                    ),
                });
            }
            Arc::new(embedder)
        }
    })
}

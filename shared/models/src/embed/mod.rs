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

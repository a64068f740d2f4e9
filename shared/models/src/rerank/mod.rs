//! Reranking: the [`Reranker`] trait and its providers, one file each, and
//! [`from_config`], the registration list. Search hands a reranker the query
//! and the fused candidates' texts; it answers one score per text, in input
//! order, higher meaning more relevant.

pub mod cohere;
pub mod lexical;
pub mod tei;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::remote::{Remote, RemoteError, Retry};
use folio_core::config::{ConfigError, ModelsConfig, RerankerKind};

/// Why candidates could not be reranked.
#[derive(Debug, thiserror::Error)]
pub enum RerankError {
    /// Worth retrying (timeouts, 429, 5xx).
    #[error("reranking provider unavailable: {0}")]
    Transient(String),
    /// Retrying will not help (bad request, an answer that does not fit).
    #[error("reranking failed: {0}")]
    Permanent(String),
}

impl From<RemoteError> for RerankError {
    fn from(error: RemoteError) -> Self {
        match error {
            RemoteError::Transient(message) => RerankError::Transient(message),
            RemoteError::Permanent(message) => RerankError::Permanent(message),
        }
    }
}

/// Scores candidate texts against a query.
pub trait Reranker: Send + Sync {
    /// The provider and model, for logs and search responses.
    fn name(&self) -> &str;
    /// One score per text, in the order of `texts`; higher is better.
    fn rerank<'a>(&'a self, query: &'a str, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<f32>, RerankError>>;
}

/// The reranker the settings choose, or None for `FOLIO_RERANKER=none`.
pub fn from_config(config: &ModelsConfig) -> Result<Option<Arc<dyn Reranker>>, ConfigError> {
    let remote = |path: &str| {
        let url = config.rerank_url.as_deref().ok_or(ConfigError {
            variable: "FOLIO_RERANK_URL",
            problem: "is not set but FOLIO_RERANKER needs it".into(),
        })?;
        Remote::new(
            format!("{url}{path}"),
            config.rerank_api_key.clone(),
            config.rerank_timeout,
            config.rerank_concurrency,
            Retry::default(),
        )
        .map_err(|problem| ConfigError {
            variable: "FOLIO_RERANK_URL",
            problem,
        })
    };
    Ok(match config.reranker {
        RerankerKind::None => None,
        RerankerKind::Lexical => Some(Arc::new(lexical::LexicalReranker)),
        RerankerKind::Tei => Some(Arc::new(tei::TeiReranker::new(remote("/rerank")?))),
        RerankerKind::Cohere => {
            let model = config.rerank_model.as_deref().ok_or(ConfigError {
                variable: "FOLIO_RERANK_MODEL",
                problem: "is not set but FOLIO_RERANKER=cohere needs it".into(),
            })?;
            Some(Arc::new(cohere::CohereReranker::new(remote("/v1/rerank")?, model)))
        }
    })
}

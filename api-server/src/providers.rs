//! The embedding and reranking providers an admin chooses at run time, in
//! domain terms (knowing no protobuf): [`check`], the one minimal call that
//! TestProvider reports and UpdateSettings requires before it stores a
//! choice, and [`Providers::choose`], which stores choices and sends a new
//! embedder through the reindex path.
//!
//! Where the choice is applied: `settings.rs` rereads the stored providers
//! and hands them to this server's `folio_models::live::Live`; the workers
//! reread them on their own (`folio-worker`'s `follow_providers`).

use std::time::{Duration, Instant};

use folio_core::config::{Provider, ProviderRole};
use folio_models::{embed::Embedder, rerank::Reranker};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    search::Search,
    services,
    settings::{Settings, Snapshot, Update},
};

/// The dimension of the index's vector column (`chunks.embedding`).
pub const INDEX_DIMENSION: usize = 384;

/// What one call to a provider found.
#[derive(Debug, Clone)]
pub struct Checked {
    pub latency: Duration,
    /// Why it does not do (None: it does).
    pub error: Option<String>,
    /// The model as folio names it.
    pub model: String,
    /// The embedder's vector dimension (0 for a reranker).
    pub dimension: usize,
}

/// A provider built for a role, ready to be called.
pub enum Built {
    Embedder(std::sync::Arc<dyn Embedder>),
    /// None: no reranking.
    Reranker(Option<std::sync::Arc<dyn Reranker>>),
}

/// Builds `candidate` for `role` (None: the one in force now, or, with
/// `environment`, the environment's).
pub fn build(settings: &Settings, role: ProviderRole, candidate: Option<&Provider>, environment: bool) -> Result<Built, String> {
    let models = settings.models();
    match (role, candidate, environment) {
        (ProviderRole::Embedder, None, false) => Ok(Built::Embedder(models.embedder())),
        (ProviderRole::Reranker, None, false) => Ok(Built::Reranker(models.reranker())),
        (ProviderRole::Embedder, candidate, _) => models.build(candidate, None).map(|(e, _)| Built::Embedder(e)),
        (ProviderRole::Reranker, candidate, _) => models.build(None, candidate).map(|(_, r)| Built::Reranker(r)),
    }
}

/// One minimal call to `built`: an embedding of one short text, which must
/// have the index's dimension, or a reranking of two texts.
pub async fn check(built: &Built) -> Checked {
    let started = Instant::now();
    match built {
        Built::Embedder(embedder) => {
            let result = embedder.embed(&["folio provider check".to_owned()]).await;
            let error = match result {
                Err(error) => Some(error.to_string()),
                Ok(vectors) => match vectors.first().map(Vec::len) {
                    Some(INDEX_DIMENSION) => None,
                    Some(other) => Some(format!(
                        "it answered {other}-dimension vectors; the index holds {INDEX_DIMENSION}-dimension ones"
                    )),
                    None => Some("it answered no vector".into()),
                },
            };
            Checked {
                latency: started.elapsed(),
                error,
                model: embedder.model().to_owned(),
                dimension: embedder.dimension(),
            }
        }
        Built::Reranker(None) => Checked {
            latency: started.elapsed(),
            error: None,
            model: "none".into(),
            dimension: 0,
        },
        Built::Reranker(Some(reranker)) => {
            let texts = ["folio provider check".to_owned(), "something else".to_owned()];
            let error = match reranker.rerank("provider check", &texts).await {
                Err(error) => Some(error.to_string()),
                Ok(scores) if scores.len() == texts.len() => None,
                Ok(scores) => Some(format!("it answered {} scores for {} texts", scores.len(), texts.len())),
            };
            Checked {
                latency: started.elapsed(),
                error,
                model: reranker.name().to_owned(),
                dimension: 0,
            }
        }
    }
}

/// Stores settings changes that choose providers.
pub struct Providers<'a> {
    pub pool: &'a folio_db::Pool,
    pub settings: &'a Settings,
    pub search: &'a Search,
}

impl Providers<'_> {
    /// Applies `update` for the admin `by`. Each provider it chooses (or
    /// resets) is built and called first; one that fails refuses the whole
    /// update, naming its field, with nothing stored. A new embedder then
    /// goes through the reindex path. The settings as they are now.
    pub async fn choose(&self, update: &Update, by: Uuid) -> ApiResult<Snapshot> {
        let mut embedder = None;
        for (role, chosen) in &update.providers {
            let built = build(self.settings, *role, chosen.as_ref(), true).map_err(|why| ApiError::invalid(role.as_str(), why))?;
            let checked = check(&built).await;
            if let Some(error) = checked.error {
                return Err(ApiError::FailedPrecondition(format!(
                    "the {} {} did not answer as needed, so nothing changed: {error}",
                    role.as_str(),
                    checked.model
                ))
                .because("PROVIDER_FAILED"));
            }
            if let Built::Embedder(built) = built {
                embedder = Some(built);
            }
        }
        let snapshot = self.settings.update(update, by).await?;
        if !update.providers.is_empty() {
            // The model servers in use are registered services; a former
            // one stays registered until an admin unregisters it.
            services::register_model_servers(self.pool, &self.settings.effective_models())
                .await
                .map_err(ApiError::Internal)?;
        }
        if let Some(embedder) = embedder {
            let reindexed = self.search.reindex_with(embedder.as_ref()).await?;
            tracing::info!(
                model = reindexed.model,
                documents = reindexed.documents,
                "an admin changed the embedder; documents queued to be re-embedded"
            );
        }
        Ok(snapshot)
    }
}

//! [`Live`]: the embedder and reranker a process uses now. They start as the
//! environment's and follow the providers an admin chooses at run time
//! (`ModelsConfig::with_providers`): each api-server and worker rereads the
//! choices and hands them to [`Live::apply`], which builds only what changed.
//! A job or a search takes the current ones once ([`Live::embedder`],
//! [`Live::reranker`]) and keeps them to its end, so no piece of work mixes
//! two models.
//!
//! It does not decide when the index changes model: the embedder's choice
//! goes through the reindex path (the api-server's UpdateSettings), and a
//! worker whose embedder differs from the index's model retries its write
//! until it has reread the choice.

use std::sync::{Arc, RwLock};

use folio_core::config::{ModelsConfig, Provider};

use crate::{
    embed::{self, Embedder},
    rerank::{self, Reranker},
};

/// An embedder and a reranker (None: no reranking).
pub type Models = (Arc<dyn Embedder>, Option<Arc<dyn Reranker>>);

/// The models of one process; share it with an `Arc`.
pub struct Live {
    /// The environment's configuration.
    base: ModelsConfig,
    /// What the environment's configuration built (a local model is loaded
    /// once, and kept for when an admin's choice is reset).
    base_embedder: Arc<dyn Embedder>,
    base_reranker: Option<Arc<dyn Reranker>>,
    current: RwLock<Current>,
}

struct Current {
    embedder: Arc<dyn Embedder>,
    reranker: Option<Arc<dyn Reranker>>,
    /// The admin's choices the current models were built from.
    chosen: (Option<Provider>, Option<Provider>),
}

impl Live {
    /// The environment's models, built from `base` (`embedder` already built
    /// from it, since a local model loads on a blocking thread).
    pub fn new(base: ModelsConfig, embedder: Arc<dyn Embedder>) -> Result<Live, folio_core::config::ConfigError> {
        let reranker = rerank::from_config(&base)?;
        Ok(Live {
            base,
            base_embedder: embedder.clone(),
            base_reranker: reranker.clone(),
            current: RwLock::new(Current {
                embedder,
                reranker,
                chosen: (None, None),
            }),
        })
    }

    /// The environment's configuration.
    pub fn base(&self) -> &ModelsConfig {
        &self.base
    }

    /// The embedder now.
    pub fn embedder(&self) -> Arc<dyn Embedder> {
        self.read().embedder.clone()
    }

    /// The reranker now (None: no reranking).
    pub fn reranker(&self) -> Option<Arc<dyn Reranker>> {
        self.read().reranker.clone()
    }

    /// The models `embedder` and `reranker` (None: the environment's) would
    /// be, without applying them: what UpdateSettings and TestProvider try
    /// before anything changes.
    pub fn build(&self, embedder: Option<&Provider>, reranker: Option<&Provider>) -> Result<Models, String> {
        let config = self.base.with_providers(embedder, reranker)?;
        let built_embedder = match embedder {
            None => self.base_embedder.clone(),
            Some(_) => embed::from_config(&config).map_err(|e| e.to_string())?,
        };
        let built_reranker = match reranker {
            None => self.base_reranker.clone(),
            Some(_) => rerank::from_config(&config).map_err(|e| e.to_string())?,
        };
        Ok((built_embedder, built_reranker))
    }

    /// Uses the admin's choices from now on, building what changed; whether
    /// anything did. A choice that cannot be built leaves everything as it
    /// was.
    pub fn apply(&self, embedder: Option<Provider>, reranker: Option<Provider>) -> Result<bool, String> {
        let chosen = (embedder, reranker);
        if self.read().chosen == chosen {
            return Ok(false);
        }
        let (built_embedder, built_reranker) = {
            let current = self.read();
            let config = self.base.with_providers(chosen.0.as_ref(), chosen.1.as_ref())?;
            let built_embedder = if current.chosen.0 == chosen.0 {
                current.embedder.clone()
            } else if chosen.0.is_none() {
                self.base_embedder.clone()
            } else {
                embed::from_config(&config).map_err(|e| e.to_string())?
            };
            let built_reranker = if current.chosen.1 == chosen.1 {
                current.reranker.clone()
            } else if chosen.1.is_none() {
                self.base_reranker.clone()
            } else {
                rerank::from_config(&config).map_err(|e| e.to_string())?
            };
            (built_embedder, built_reranker)
        };
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Current {
            embedder: built_embedder,
            reranker: built_reranker,
            chosen,
        };
        Ok(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use folio_core::config::{ModelsConfig, Provider};

    use super::Live;
    use crate::embed;

    #[test]
    fn choices_replace_the_environments_models_and_a_reset_brings_them_back() {
        let base = ModelsConfig::from_lookup(|_| None).unwrap();
        let live = Live::new(base.clone(), embed::from_config(&base).unwrap()).unwrap();
        let hash = live.embedder();
        assert_eq!(hash.model(), "folio-hash-v1-384");
        assert_eq!(live.reranker().unwrap().name(), "lexical-bm25");
        let openai = Provider {
            kind: "openai".into(),
            url: "http://127.0.0.1:9".into(),
            model: "small".into(),
            api_key: None,
        };
        let none = Provider {
            kind: "none".into(),
            url: String::new(),
            model: String::new(),
            api_key: None,
        };
        assert!(live.apply(Some(openai.clone()), Some(none.clone())).unwrap());
        assert_eq!(live.embedder().model(), "openai:small");
        assert!(live.reranker().is_none());
        assert!(!live.apply(Some(openai), Some(none)).unwrap(), "the same choices change nothing");
        let bad = Provider {
            kind: "local".into(),
            url: String::new(),
            model: String::new(),
            api_key: None,
        };
        assert!(live.apply(Some(bad), None).unwrap_err().contains("is not one of hash, openai"));
        assert_eq!(live.embedder().model(), "openai:small", "a refused choice changes nothing");
        assert!(live.apply(None, None).unwrap());
        assert!(Arc::ptr_eq(&live.embedder(), &hash), "the environment's embedder, not a new one");
        assert_eq!(live.reranker().unwrap().name(), "lexical-bm25");
    }
}

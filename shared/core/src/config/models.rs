//! Which embedding and reranking models run, and how to reach them.

use std::{fmt, path::PathBuf, time::Duration};

use super::{ConfigError, vars::Vars};

/// Which embedding and reranking models run, and how to reach them.
#[derive(Clone, Debug)]
pub struct ModelsConfig {
    /// `FOLIO_EMBEDDER`: `hash` (no model), `openai` or `local`.
    pub embedder: EmbedderKind,
    /// `FOLIO_EMBED_URL`: the OpenAI-compatible server's base URL (`openai`);
    /// folio posts to `<url>/v1/embeddings`.
    pub embed_url: Option<String>,
    /// `FOLIO_EMBED_MODEL`: the model the server is asked for (`openai`).
    pub embed_model: Option<String>,
    /// `FOLIO_EMBED_API_KEY`: sent as a bearer token, if set (`openai`).
    pub embed_api_key: Option<ApiKey>,
    /// `FOLIO_EMBED_DIMENSION`: the vectors' dimension; every vector is checked
    /// against it.
    pub embed_dimension: usize,
    /// `FOLIO_EMBED_MODEL_DIR`: a sentence-transformers BERT model directory
    /// (`local`): config.json, model.safetensors, tokenizer.json.
    pub embed_model_dir: Option<PathBuf>,
    /// `FOLIO_EMBED_TIMEOUT_MS`: the time one request to the server may take.
    pub embed_timeout: Duration,
    /// `FOLIO_EMBED_CONCURRENCY`: embedding requests (`openai`) or inferences
    /// (`local`) one process runs at once.
    pub embed_concurrency: usize,
    /// `FOLIO_EMBED_MAX_BATCH`: the most texts in one request or inference;
    /// larger batches are split.
    pub embed_max_batch: usize,
    /// `FOLIO_RERANKER`: `lexical`, `tei`, `cohere` or `none`.
    pub reranker: RerankerKind,
    /// `FOLIO_RERANK_URL`: the reranking server's base URL (`tei`: folio posts
    /// to `<url>/rerank`; `cohere`: to `<url>/v1/rerank`).
    pub rerank_url: Option<String>,
    /// `FOLIO_RERANK_MODEL`: the model the server is asked for (`cohere`).
    pub rerank_model: Option<String>,
    /// `FOLIO_RERANK_API_KEY`: sent as a bearer token, if set.
    pub rerank_api_key: Option<ApiKey>,
    /// `FOLIO_RERANK_TIMEOUT_MS`: the time one reranking request may take.
    pub rerank_timeout: Duration,
    /// `FOLIO_RERANK_CONCURRENCY`: reranking requests one process runs at once.
    pub rerank_concurrency: usize,
}

/// The embedding provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedderKind {
    /// Feature hashing: no model, always available.
    Hash,
    /// An OpenAI-compatible `/v1/embeddings` server.
    OpenAi,
    /// A BERT model run in the process.
    Local,
}

/// The reranking provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RerankerKind {
    /// BM25 over the candidates, in the process.
    Lexical,
    /// Text Embeddings Inference's `/rerank`.
    Tei,
    /// The Cohere-style `/v1/rerank`.
    Cohere,
    /// No reranking.
    None,
}

/// A secret sent to a model server. Its `Debug` does not show it, so a logged
/// configuration does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

/// An admin's run-time choice of a provider (SystemService.UpdateSettings),
/// which overrides the environment's: a kind (`hash` or `openai` for the
/// embedder; `lexical`, `tei`, `cohere` or `none` for the reranker) and, for
/// a model server, its base URL, model and key. `local` is not offered at run
/// time: its model directory is a file on each host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    pub kind: String,
    pub url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
}

/// Which provider a [`Provider`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderRole {
    Embedder,
    Reranker,
}

impl ProviderRole {
    /// The role's name: `embedder` or `reranker`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderRole::Embedder => "embedder",
            ProviderRole::Reranker => "reranker",
        }
    }

    /// The role `name` names.
    pub fn parse(name: &str) -> Option<Self> {
        [ProviderRole::Embedder, ProviderRole::Reranker]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

impl ModelsConfig {
    /// This configuration with `embedder` and `reranker` (where given) in
    /// place of the environment's; an error names what is wrong with a
    /// choice (an unknown kind, a missing or malformed URL or model).
    pub fn with_providers(&self, embedder: Option<&Provider>, reranker: Option<&Provider>) -> Result<ModelsConfig, String> {
        let mut config = self.clone();
        let url = |provider: &Provider| -> Result<Option<String>, String> {
            let url = provider.url.trim().trim_end_matches('/');
            let host = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            match host {
                Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(Some(url.to_owned())),
                _ => Err(format!("url {:?} is not an http:// or https:// URL", provider.url)),
            }
        };
        let model = |provider: &Provider| -> Result<Option<String>, String> {
            let model = provider.model.trim();
            if model.is_empty() {
                Err(format!("a {} provider needs a model", provider.kind))
            } else {
                Ok(Some(model.to_owned()))
            }
        };
        if let Some(provider) = embedder {
            match provider.kind.as_str() {
                "hash" => config.embedder = EmbedderKind::Hash,
                "openai" => {
                    config.embedder = EmbedderKind::OpenAi;
                    config.embed_url = url(provider)?;
                    config.embed_model = model(provider)?;
                    config.embed_api_key = provider.api_key.clone();
                }
                other => return Err(format!("embedder kind {other:?} is not one of hash, openai")),
            }
        }
        if let Some(provider) = reranker {
            match provider.kind.as_str() {
                "lexical" => config.reranker = RerankerKind::Lexical,
                "none" => config.reranker = RerankerKind::None,
                "tei" | "cohere" => {
                    config.reranker = if provider.kind == "tei" {
                        RerankerKind::Tei
                    } else {
                        RerankerKind::Cohere
                    };
                    config.rerank_url = url(provider)?;
                    config.rerank_model = if provider.kind == "cohere" {
                        model(provider)?
                    } else {
                        Some(provider.model.trim().to_owned()).filter(|m| !m.is_empty())
                    };
                    config.rerank_api_key = provider.api_key.clone();
                }
                other => return Err(format!("reranker kind {other:?} is not one of lexical, tei, cohere, none")),
            }
        }
        Ok(config)
    }

    /// Reads only the model settings through `lookup`; the model tests and
    /// the embedding benchmark use it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_vars(&Vars(&lookup))
    }

    pub(super) fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let embedder = vars.choice(
            "FOLIO_EMBEDDER",
            &[
                ("hash", EmbedderKind::Hash),
                ("openai", EmbedderKind::OpenAi),
                ("local", EmbedderKind::Local),
            ],
        )?;
        let reranker = vars.choice(
            "FOLIO_RERANKER",
            &[
                ("lexical", RerankerKind::Lexical),
                ("tei", RerankerKind::Tei),
                ("cohere", RerankerKind::Cohere),
                ("none", RerankerKind::None),
            ],
        )?;
        let openai = (embedder == EmbedderKind::OpenAi).then_some("FOLIO_EMBEDDER=openai");
        let local = (embedder == EmbedderKind::Local).then_some("FOLIO_EMBEDDER=local");
        let rerank_by = match reranker {
            RerankerKind::Tei => Some("FOLIO_RERANKER=tei"),
            RerankerKind::Cohere => Some("FOLIO_RERANKER=cohere"),
            RerankerKind::Lexical | RerankerKind::None => None,
        };
        let cohere = (reranker == RerankerKind::Cohere).then_some("FOLIO_RERANKER=cohere");
        Ok(ModelsConfig {
            embedder,
            embed_url: server_url(vars, "FOLIO_EMBED_URL", openai)?,
            embed_model: vars.needed("FOLIO_EMBED_MODEL", openai)?,
            embed_api_key: vars.get("FOLIO_EMBED_API_KEY").map(ApiKey),
            embed_dimension: vars.bounded("FOLIO_EMBED_DIMENSION", 384, 1, 16_000)?,
            embed_model_dir: vars.needed("FOLIO_EMBED_MODEL_DIR", local)?.map(PathBuf::from),
            embed_timeout: vars.millis("FOLIO_EMBED_TIMEOUT_MS", 30_000, 10, 600_000)?,
            embed_concurrency: vars.bounded("FOLIO_EMBED_CONCURRENCY", 4, 1, 256)?,
            embed_max_batch: vars.bounded("FOLIO_EMBED_MAX_BATCH", 32, 1, 4096)?,
            reranker,
            rerank_url: server_url(vars, "FOLIO_RERANK_URL", rerank_by)?,
            rerank_model: vars.needed("FOLIO_RERANK_MODEL", cohere)?,
            rerank_api_key: vars.get("FOLIO_RERANK_API_KEY").map(ApiKey),
            rerank_timeout: vars.millis("FOLIO_RERANK_TIMEOUT_MS", 10_000, 10, 600_000)?,
            rerank_concurrency: vars.bounded("FOLIO_RERANK_CONCURRENCY", 8, 1, 256)?,
        })
    }
}

/// A model server's base URL (http or https, without a trailing slash), if
/// set; unset is an error when `needed_by` names a provider that needs it.
fn server_url(vars: &Vars<'_>, name: &'static str, needed_by: Option<&str>) -> Result<Option<String>, ConfigError> {
    match vars.needed(name, needed_by)? {
        None => Ok(None),
        Some(_) => vars
            .url(name, &["http", "https"])
            .map(|url| Some(url.trim_end_matches('/').to_owned())),
    }
}

//! Settings of SearchService.

use std::time::Duration;

use super::{ConfigError, vars::Vars};

/// Settings of SearchService.
#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// `FOLIO_HNSW_EF_SEARCH`: candidates the HNSW scan keeps (pgvector's
    /// `hnsw.ef_search`): higher finds more of the true nearest, slower.
    /// Unset, it scales with the largest sealed segment (100 up to 12,500
    /// chunks, one per 125 above, at most 800; `chunk::scaled_ef_search`).
    pub ef_search: Option<u32>,
    /// `FOLIO_SEARCH_CANDIDATES`: candidates taken from each list (at least
    /// twice `top_k`) and handed to the reranker after fusion.
    pub candidates: usize,
    /// `FOLIO_SEARCH_DATABASE_URL`: a streaming replica searches read from
    /// (unset: the primary, `DATABASE_URL`).
    pub replica_url: Option<String>,
    /// `FOLIO_SEARCH_REPLICA_WAIT_MS`: how long a search waits for the
    /// replica to replay what the primary had committed when the search
    /// began, before it reads the primary instead.
    pub replica_wait: Duration,
    /// `FOLIO_SEARCH_VECTOR_WEIGHT`: how much a vector candidate's rank counts
    /// in fusion (unset: what the embedder says its vectors are worth,
    /// `Embedder::vector_weight`).
    pub vector_weight: Option<f64>,
    /// `FOLIO_SEARCH_KEYWORD_WEIGHT`: how much a keyword candidate's rank
    /// counts in fusion.
    pub keyword_weight: f64,
    /// `FOLIO_SEARCH_RERANK_WEIGHT`: how much the reranker's order counts
    /// against the fused order when the two are blended.
    pub rerank_weight: f64,
    /// `FOLIO_SEARCH_HEADING_WEIGHT`: how much the order of the candidates
    /// whose own heading matches the query counts in that blend.
    pub heading_weight: f64,
}

impl SearchConfig {
    pub(super) fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(SearchConfig {
            ef_search: vars.bounded_if_set("FOLIO_HNSW_EF_SEARCH", 1, 1000)?,
            candidates: vars.bounded("FOLIO_SEARCH_CANDIDATES", 50, 1, 1000)?,
            replica_url: match vars.get("FOLIO_SEARCH_DATABASE_URL") {
                Some(_) => Some(vars.url("FOLIO_SEARCH_DATABASE_URL", &["postgres", "postgresql"])?),
                None => None,
            },
            replica_wait: vars.millis("FOLIO_SEARCH_REPLICA_WAIT_MS", 200, 0, 10_000)?,
            vector_weight: vars.bounded_if_set("FOLIO_SEARCH_VECTOR_WEIGHT", 0.0, 10.0)?,
            keyword_weight: vars.bounded("FOLIO_SEARCH_KEYWORD_WEIGHT", 1.0, 0.0, 10.0)?,
            rerank_weight: vars.bounded("FOLIO_SEARCH_RERANK_WEIGHT", 0.75, 0.0, 10.0)?,
            heading_weight: vars.bounded("FOLIO_SEARCH_HEADING_WEIGHT", 4.0, 0.0, 10.0)?,
        })
    }
}

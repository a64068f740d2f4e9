//! Hybrid search over the chunks a caller may see (their own documents' and
//! those shared with them; an admin's, everyone's), and re-embedding the index
//! with this server's model. Knows nothing of protobuf: `search_service.rs`
//! reads requests into a [`Query`] and `convert.rs` writes an [`Outcome`] out.
//!
//! Search takes vector candidates (HNSW, cosine, among chunks embedded by the
//! server's model) and keyword candidates (`websearch_to_tsquery`), fuses them
//! by reciprocal rank (k = 60, [`fusion`]), and reranks the fused head with
//! the configured reranker (`folio_models::rerank::Reranker`).

pub mod fusion;
pub mod reads;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use diesel_async::AsyncConnection as _;
use folio_core::config::SearchConfig;
use folio_db as db;
use folio_db::{
    documents::{self as shared_documents, lifecycle},
    models::{
        chunk::{self, Chunk, SearchScope},
        document, embedding_index,
    },
};
use folio_models::{embed::Embedder, live::Live};
use tokio::sync::Notify;
use tonic_types::FieldViolation;
use uuid::Uuid;

pub use self::fusion::Scores;
use crate::{
    auth::{Principal, Whose},
    error::{ApiError, ApiResult},
};

/// Search and reindexing, with what they need.
#[derive(Clone)]
pub struct Search {
    /// The primary: filters, the index's model, reindexing.
    pub pool: db::Pool,
    /// Where the candidates and their chunks are read (the primary, or a
    /// replica that has caught up).
    pub reads: reads::Reads,
    /// The embedder and reranker now (the environment's, or an admin's
    /// run-time choice); a search takes them once at its start.
    pub models: Arc<Live>,
    pub config: SearchConfig,
    pub relay_wake: Arc<Notify>,
    pub cache: folio_core::cache::Cache,
    /// Tokens per chunk and overlap (`FOLIO_CHUNK_TOKENS`,
    /// `FOLIO_CHUNK_OVERLAP`): with the embedder, how the worker chunks
    /// (`folio_models::embed::chunking`); documents chunked otherwise are what
    /// a reindex makes again.
    pub chunk_sizes: (usize, usize),
}

/// A search, its fields already valid: `text` trimmed and not empty,
/// `top_k` 1 to 100, labels trimmed and not empty.
#[derive(Debug, Clone)]
pub struct Query {
    pub text: String,
    pub top_k: usize,
    pub mode: Mode,
    /// Only these documents (none: every document in reach).
    pub document_ids: Vec<Uuid>,
    /// Only documents carrying any of these labels (none: any).
    pub labels: Vec<String>,
    /// Whether the configured reranker reorders the fused head.
    pub rerank: bool,
}

/// Which candidates a search takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hybrid,
    Vector,
    Keyword,
}

/// What a search found and how.
#[derive(Debug)]
pub struct Outcome {
    /// Best first, at most `top_k`.
    pub hits: Vec<Hit>,
    pub timings: Timings,
    /// The embedding model of the query and the index.
    pub model: String,
    /// The reranker's name, when one reranked.
    pub reranker: Option<String>,
}

/// One chunk found, with its document's title and filename.
#[derive(Debug)]
pub struct Hit {
    pub chunk: Chunk,
    pub document_title: String,
    pub filename: String,
    pub scores: Scores,
}

/// How long each step took; None where a step did not run.
#[derive(Debug, Default)]
pub struct Timings {
    pub embed: Option<Duration>,
    pub vector: Option<Duration>,
    pub keyword: Option<Duration>,
    pub rerank: Option<Duration>,
    pub total: Duration,
}

/// What ReindexDocuments did.
#[derive(Debug)]
pub struct Reindexed {
    /// The model the index now records, and its dimension.
    pub model: String,
    pub dimension: i32,
    /// Documents queued for re-embedding.
    pub documents: i64,
}

/// Why a search failed.
#[derive(Debug)]
pub enum Error {
    /// The query's filters name what the caller cannot search.
    Filters(BadFilters),
    Api(ApiError),
}

impl<E: Into<ApiError>> From<E> for Error {
    fn from(error: E) -> Self {
        Error::Api(error.into())
    }
}

/// Filters that find nothing, each with its position in the query: ids of
/// documents the caller cannot search (or that do not exist), and labels no
/// document in reach carries.
#[derive(Debug, Default)]
pub struct BadFilters {
    pub document_ids: Vec<(usize, Uuid)>,
    pub labels: Vec<(usize, String)>,
}

/// The `document_ids` and `labels` filters of a request (a search's, or a
/// conversation's scope), each invalid one named in `violations`: ids that
/// are not UUIDs, labels empty once trimmed.
pub fn read_filters(document_ids: &[String], labels: &[String], violations: &mut Vec<FieldViolation>) -> (Vec<Uuid>, Vec<String>) {
    let mut ids = Vec::new();
    for (i, id) in document_ids.iter().enumerate() {
        match id.parse::<Uuid>() {
            Ok(id) => ids.push(id),
            Err(_) => violations.push(FieldViolation::new(format!("document_ids[{i}]"), "must be a UUID")),
        }
    }
    let labels: Vec<String> = labels.iter().map(|l| l.trim().to_owned()).collect();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() {
            violations.push(FieldViolation::new(format!("labels[{i}]"), "must not be empty"));
        }
    }
    (ids, labels)
}

impl Error {
    /// The error as the request's terms: filters that find nothing are
    /// invalid fields (`document_ids[i]`, `labels[i]`).
    pub fn into_api(self) -> ApiError {
        match self {
            Error::Api(error) => error,
            Error::Filters(bad) => {
                ApiError::InvalidArgument(
                    bad.document_ids
                        .into_iter()
                        .map(|(i, id)| FieldViolation::new(format!("document_ids[{i}]"), format!("no document {id}")))
                        .chain(bad.labels.into_iter().map(|(i, label)| {
                            FieldViolation::new(format!("labels[{i}]"), format!("no document carries the label {label:?}"))
                        }))
                        .collect(),
                )
            }
        }
    }
}

impl Search {
    /// Whether `document_ids` and `labels` name what `principal` may search,
    /// as a query's filters must (a conversation's scope is checked so).
    pub async fn check_scope(&self, principal: &Principal, document_ids: &[Uuid], labels: &[String]) -> Result<(), Error> {
        let scope = SearchScope {
            reach: principal.reach(Whose::All),
            document_ids: document_ids.to_vec(),
            labels: labels.to_vec(),
        };
        let mut conn = self.pool.get().await?;
        check_filters(&mut conn, &scope).await
    }

    /// Runs `query` over the chunks `principal` may see.
    pub async fn run(&self, principal: &Principal, query: Query) -> Result<Outcome, Error> {
        let started = Instant::now();
        let Query {
            text,
            top_k,
            mode,
            document_ids,
            labels,
            rerank,
        } = query;
        let scope = SearchScope {
            reach: principal.reach(Whose::All),
            document_ids,
            labels,
        };

        let (embedder, reranker) = (self.models.embedder(), self.models.reranker());
        let mut conn = self.pool.get().await?;
        check_filters(&mut conn, &scope).await?;
        let model = embedder.model().to_owned();
        if let Some(index) = embedding_index::get(&mut conn).await?
            && index.model != model
        {
            return Err(ApiError::FailedPrecondition(format!(
                "the index holds vectors of {} ({} dimensions) but this server embeds queries with {} ({}); \
                 an admin's ReindexDocuments re-embeds the index with it",
                index.model,
                index.dimension,
                model,
                embedder.dimension()
            ))
            .because("INDEX_MODEL_MISMATCH")
            .into());
        }
        drop(conn);

        let source = self.reads.source().await?;
        let candidates = (top_k * 2).max(self.config.candidates);
        let mut timings = Timings::default();
        let vector = async {
            if mode == Mode::Keyword {
                return ApiResult::Ok((Vec::new(), None, None));
            }
            let t = Instant::now();
            let embedded = embedder
                .embed(std::slice::from_ref(&text))
                .await
                .map_err(|e| ApiError::Unavailable(format!("cannot embed the query: {e}")))?;
            let embed_time = t.elapsed();
            let vector = pgvector::Vector::from(embedded.into_iter().next().unwrap_or_default());
            let t = Instant::now();
            let mut conn = self.reads.get(source).await?;
            let found = conn
                .transaction(async |conn| chunk::nearest(conn, &vector, &model, &scope, candidates as i64, self.config.ef_search).await)
                .await?;
            Ok((found, Some(embed_time), Some(t.elapsed())))
        };
        let keyword = async {
            if mode == Mode::Vector {
                return ApiResult::Ok((Vec::new(), None));
            }
            let t = Instant::now();
            let mut conn = self.reads.get(source).await?;
            let found = chunk::matching(&mut conn, &text, &scope, candidates as i64).await?;
            Ok((found, Some(t.elapsed())))
        };
        let ((by_vector, embed_time, vector_time), (by_keyword, keyword_time)) = tokio::try_join!(vector, keyword)?;
        timings.embed = embed_time;
        timings.vector = vector_time;
        timings.keyword = keyword_time;

        let weights = fusion::Weights {
            vector: self.config.vector_weight.unwrap_or_else(|| embedder.vector_weight()),
            keyword: self.config.keyword_weight,
            rerank: self.config.rerank_weight,
            heading: self.config.heading_weight,
        };
        let mut scores = fusion::fuse(&by_vector, &by_keyword, weights);
        let mut order = fusion::by_fused(&scores);
        order.truncate(candidates);
        let mut conn = self.reads.get(source).await?;
        let mut loaded: HashMap<i64, (Chunk, String, String)> = chunk::with_documents(&mut conn, &order)
            .await?
            .into_iter()
            .map(|row| (row.0.id, row))
            .collect();
        drop(conn);
        order.retain(|id| loaded.contains_key(id));

        let reranker = reranker.as_ref().filter(|_| rerank && !order.is_empty());
        if let Some(reranker) = reranker {
            let t = Instant::now();
            let texts: Vec<String> = order.iter().map(|id| loaded[id].0.with_own_heading()).collect();
            let reranked = reranker
                .rerank(&text, &texts)
                .await
                .map_err(|e| ApiError::Unavailable(format!("reranker {}: {e}", reranker.name())))?;
            for (id, score) in order.iter().zip(reranked) {
                if let Some(entry) = scores.get_mut(id) {
                    entry.rerank = f64::from(score);
                    let heading = loaded[id].0.section_path.last().cloned().flatten().unwrap_or_default();
                    entry.heading = fusion::heading_match(&text, &heading);
                }
            }
            fusion::blend(&mut order, &scores, weights);
            timings.rerank = Some(t.elapsed());
        }
        order.truncate(top_k);
        let hits = order
            .iter()
            .filter_map(|id| {
                let (chunk, document_title, filename) = loaded.remove(id)?;
                Some(Hit {
                    chunk,
                    document_title,
                    filename,
                    scores: scores[id],
                })
            })
            .collect();
        timings.total = started.elapsed();
        Ok(Outcome {
            hits,
            timings,
            model,
            reranker: reranker.map(|r| r.name().to_owned()),
        })
    }

    /// Records this server's model as the index's and queues every READY
    /// document with chunks of another model, or chunked otherwise than the
    /// worker chunks for this model, to be chunked again from its parse
    /// result and embedded.
    pub async fn reindex(&self) -> ApiResult<Reindexed> {
        self.reindex_with(self.models.embedder().as_ref()).await
    }

    /// [`reindex`](Self::reindex) for `embedder`: what an admin's run-time
    /// change of the embedder goes through.
    pub async fn reindex_with(&self, embedder: &dyn Embedder) -> ApiResult<Reindexed> {
        let model = embedder.model().to_owned();
        let dimension = embedder.dimension() as i32;
        let chunking = folio_models::embed::chunking(embedder, self.chunk_sizes.0, self.chunk_sizes.1);
        if dimension != 384 {
            return Err(ApiError::FailedPrecondition(format!(
                "{model} makes {dimension}-dimension vectors; the index column is vector(384)"
            ))
            .because("INDEX_MODEL_MISMATCH"));
        }
        let mut conn = self.pool.get().await?;
        let (index, events) = conn
            .transaction(async |conn| -> ApiResult<_> {
                let index = embedding_index::set(conn, &model, dimension).await?;
                let stale = chunk::documents_to_reindex(conn, &model, &chunking).await?;
                let mut events = Vec::with_capacity(stale.len());
                for id in stale {
                    if let Some(event) = lifecycle::reindex_queued(conn, id, &model).await?.event {
                        events.push(event);
                    }
                }
                Ok((index, events))
            })
            .await?;
        self.relay_wake.notify_one();
        for event in &events {
            shared_documents::announce(&self.cache, event).await;
        }
        Ok(Reindexed {
            model: index.model,
            dimension: index.dimension,
            documents: events.len() as i64,
        })
    }
}

/// Document ids must name documents the caller may search, and labels must
/// be carried by at least one of them.
async fn check_filters(conn: &mut diesel_async::AsyncPgConnection, scope: &SearchScope) -> Result<(), Error> {
    let mut bad = BadFilters::default();
    if !scope.document_ids.is_empty() {
        let found = document::existing(conn, &scope.document_ids, scope.reach).await?;
        bad.document_ids = scope
            .document_ids
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, id)| !found.contains(id))
            .collect();
    }
    for (i, label) in scope.labels.iter().enumerate() {
        if !document::label_used(conn, label, scope.reach).await? {
            bad.labels.push((i, label.clone()));
        }
    }
    if bad.document_ids.is_empty() && bad.labels.is_empty() {
        Ok(())
    } else {
        Err(Error::Filters(bad))
    }
}

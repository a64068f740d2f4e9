//! The jobs a worker runs. Each kind has one file and one arm in [`run`], the
//! registration list.

mod ping;
mod process_document;
mod reindex_document;

use std::{sync::Arc, time::Duration};

use folio_core::{blobs::Blobs, cache::Cache, config::DocumentsConfig};
use folio_db::{
    self as db,
    documents::lifecycle::{Lease, LifecycleError},
    models::chunk::{Embedding, NewChunk},
};
use folio_models::{
    embed::{self, Embedder, Tokens},
    live::Live,
};
use folio_parse::{
    chunk::{self as chunker, Chunk, ChunkSettings},
    parse::Block,
};
use folio_proto::queue::v1::{Job, job};
use uuid::Uuid;

/// What a job needs from its worker.
#[derive(Clone)]
pub struct JobContext {
    pub pool: db::Pool,
    pub worker_id: Uuid,
    /// How long a document this worker starts stays leased to it without a
    /// heartbeat (`FOLIO_LEASE_SECS`).
    pub lease_ttl: Duration,
    pub blobs: Blobs,
    pub cache: Cache,
    pub documents: DocumentsConfig,
    /// The embedder now (the environment's, or an admin's run-time choice);
    /// a job takes it once at its start.
    pub models: Arc<Live>,
    /// Where documents are parsed: a child process per document.
    pub sandbox: crate::sandbox::Sandbox,
    /// How scanned pages and images are read.
    pub ocr: Arc<crate::ocr::Ocr>,
}

impl JobContext {
    /// The lease a try this worker starts holds.
    pub fn lease(&self) -> Lease {
        Lease {
            worker: self.worker_id,
            ttl: self.lease_ttl,
        }
    }

    /// The chunks of a parse result as `embedder` reads them
    /// (in its own tokens where it reads a bounded window of them, else in
    /// words), and how they were made, as the document records it.
    /// Deterministic, so a redelivery or a reindex makes the same chunks.
    pub fn chunk(&self, embedder: &dyn Embedder, blocks: &[Block]) -> (Vec<Chunk>, String) {
        let settings = ChunkSettings {
            max_tokens: self.documents.chunk_tokens,
            overlap_tokens: self.documents.chunk_overlap,
        };
        let chunks = match embedder.tokens() {
            Some(tokens) => chunker::chunk_with(blocks, settings, &ModelTokens(tokens)),
            None => chunker::chunk(blocks, settings),
        };
        let chunking = embed::chunking(embedder, settings.max_tokens, settings.overlap_tokens);
        (chunks, chunking)
    }
}

/// The rows that store `chunks` (in reading order) with their `vectors`.
pub fn chunk_rows(document_id: Uuid, chunks: Vec<Chunk>, vectors: Vec<Vec<f32>>, model: &str) -> Vec<NewChunk> {
    chunks
        .into_iter()
        .zip(vectors)
        .enumerate()
        .map(|(ordinal, (c, v))| NewChunk {
            document_id,
            ordinal: ordinal as i32,
            text: c.text,
            section_path: c.section_path.into_iter().map(Some).collect(),
            page_start: c.page_start.map(|p| p as i32),
            page_end: c.page_end.map(|p| p as i32),
            token_count: c.token_count as i32,
            embedding: Embedding(pgvector::Vector::from(v)),
            embedding_model: model.to_owned(),
        })
        .collect()
}

/// A model's tokens as the chunker measures.
struct ModelTokens<'a>(&'a dyn Tokens);

impl chunker::Measure for ModelTokens<'_> {
    fn count(&self, text: &str) -> usize {
        self.0.count(text)
    }

    fn window(&self) -> Option<usize> {
        Some(self.0.window())
    }
}

/// One delivery of a job: where it stands among the job's tries, and the
/// token its writes to a document compare (see `documents::lifecycle`).
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// 1-based.
    pub number: u32,
    pub max: u32,
    /// Drawn for this delivery alone: a redelivery of the same job gets another.
    pub token: Uuid,
    /// When the next try runs if this one fails transiently (None: it is the
    /// last).
    pub retry_delay: Option<Duration>,
}

/// How a job ended, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying later: a dependency was unavailable.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Retrying cannot help: the job is malformed, names what does not exist,
    /// or its input is refused (a corrupt file). `code` is for clients.
    #[error("permanent ({code}): {message}")]
    Permanent { code: &'static str, message: String },
    /// The job's document moved on without it (deleted, cancelled, another
    /// attempt, or another delivery holds it): nothing to retry or record.
    #[error("superseded: {0}")]
    Superseded(String),
}

impl JobError {
    /// A permanent failure with a code.
    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        JobError::Permanent {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::sandbox::ParseFailure> for JobError {
    fn from(failure: crate::sandbox::ParseFailure) -> Self {
        match failure {
            crate::sandbox::ParseFailure::Permanent { code, message } => JobError::Permanent { code, message },
            crate::sandbox::ParseFailure::Transient(error) => JobError::Transient(error),
        }
    }
}

impl From<LifecycleError> for JobError {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::Database(error) => JobError::Transient(error.into()),
            refused => JobError::Superseded(refused.to_string()),
        }
    }
}

impl From<diesel::result::Error> for JobError {
    fn from(error: diesel::result::Error) -> Self {
        JobError::Transient(error.into())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for JobError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        JobError::Transient(error.into())
    }
}

/// Whether a job's effect was applied now or had been applied before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
}

/// Runs `job`. Every job deduplicates on its id inside the transaction that
/// applies its effect, so a redelivered job is a no-op.
pub async fn run(context: &JobContext, job: &Job, delivery: Delivery) -> Result<Outcome, JobError> {
    let job_id = parse_uuid("job_id", &job.job_id)?;
    match &job.kind {
        Some(job::Kind::Ping(ping)) => ping::run(context, job_id, ping).await,
        Some(job::Kind::ProcessDocument(body)) => process_document::run(context, job_id, body, delivery).await,
        Some(job::Kind::ReindexDocument(body)) => reindex_document::run(context, job_id, body).await,
        None => Err(JobError::permanent("BAD_JOB", "job has no kind")),
    }
}

/// Records that a transient failure will be retried after `delay`.
pub async fn retry_scheduled(context: &JobContext, job: &Job, delivery: Delivery, delay: Duration, error: &anyhow::Error) {
    if let Some(job::Kind::ProcessDocument(body)) = &job.kind {
        process_document::retry_scheduled(context, body, delivery, delay, error).await;
    }
}

/// Records that a job failed for good (permanently, or out of tries). False
/// only when the database could not be reached to record it; a failure the
/// lifecycle refuses (recorded already, or the document moved on) is settled.
pub async fn failed(context: &JobContext, job: &Job, delivery: Delivery, code: &str, message: &str) -> bool {
    match &job.kind {
        Some(job::Kind::ProcessDocument(body)) => process_document::failed(context, body, delivery, code, message).await,
        _ => true,
    }
}

/// What a client reads of a failure it cannot act on (a dependency that did
/// not answer, a model server's refusal): `what`, a sentence written for it,
/// and the reference under which the detail (addresses, SQL, paths) is logged.
pub fn for_client(what: &str, detail: &dyn std::fmt::Display) -> String {
    let reference = Uuid::new_v4();
    tracing::warn!(%reference, detail = %detail, "{what}");
    match folio_core::trace::current_id() {
        Some(trace_id) => format!("{what} (reference {reference}, trace {trace_id})"),
        None => format!("{what} (reference {reference})"),
    }
}

/// A transient failure whose text is written for clients (it names no
/// address, path or query, and says what to do): they read it as it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ForClient(pub String);

/// The client's message for a transient failure; `again` when a retry follows.
pub fn unavailable(error: &anyhow::Error, again: bool) -> String {
    if let Some(written) = error.downcast_ref::<ForClient>() {
        return written.0.clone();
    }
    let what = if again {
        "a service folio depends on was unavailable; the try will be repeated"
    } else {
        "a service folio depends on was unavailable on every try"
    };
    for_client(what, &format_args!("{error:#}"))
}

fn parse_uuid(field: &str, value: &str) -> Result<Uuid, JobError> {
    value
        .parse()
        .map_err(|_| JobError::permanent("BAD_JOB", format!("{field} {value:?} is not a UUID")))
}

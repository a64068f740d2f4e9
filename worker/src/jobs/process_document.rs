//! The ProcessDocument job: parse, chunk, embed and index one document.
//!
//! Each stage commits the document's new state and its event together, then
//! announces the event on Redis. The parse result is kept in the blob store per
//! attempt, so a redelivered job (a worker killed mid-way) resumes after PARSE;
//! chunking is deterministic and reruns. Vectors that took a while to make are
//! saved too (`pipeline::embed::saved`), so a job redelivered after EMBED
//! resumes at INDEX; cheap ones (the `hash` embedder) are simply made again.
//! The chunks are replaced, the job id recorded and the document marked READY
//! in one transaction, so a document has exactly one set of chunks whatever
//! crashes when.
//!
//! A session-level advisory lock on the document keeps two workers from running
//! it at once (a redelivery while the first worker still runs); it is released
//! when the job ends or its connection dies.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
use folio_proto::queue::v1::ProcessDocument;
use folio_shared::{
    db::models::{
        chunk::{self, Embedding, NewChunk},
        document::{self, Document, StateChange, state},
        embedding_index::{self, IndexModel},
        processed_job,
    },
    documents::{self, Progress, embedded_key, kind, parsed_key, stage},
    pipeline::{
        chunk::{ChunkSettings, chunk, with_headings},
        embed::{EmbedError, saved},
        parse::{self, Format, Limits, ParsedDocument},
    },
};
use uuid::Uuid;

use super::{JobContext, JobError, Outcome, Try, parse_uuid};

/// Why processing stopped early.
enum Stop {
    Failed(JobError),
    /// The user cancelled; the document is now CANCELLED.
    Cancelled,
    /// The document was deleted, or moved on to another attempt.
    Gone,
}

impl<E: Into<JobError>> From<E> for Stop {
    fn from(error: E) -> Self {
        Stop::Failed(error.into())
    }
}

fn transient(error: impl Into<anyhow::Error>) -> Stop {
    Stop::Failed(JobError::Transient(error.into()))
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// The advisory-lock key of a document (the low 64 bits of its id).
fn lock_key(id: Uuid) -> i64 {
    id.as_u64_pair().1 as i64
}

pub(super) async fn run(context: &JobContext, job_id: Uuid, body: &ProcessDocument, attempt: Try) -> Result<Outcome, JobError> {
    let document_id = parse_uuid("document_id", &body.document_id)?;
    let mut lock_conn = context.pool.get().await?;
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(lock_key(document_id))
        .get_result(&mut lock_conn)
        .await?;
    if !locked.locked {
        return Err(JobError::Transient(anyhow::anyhow!(
            "another worker is processing document {document_id}"
        )));
    }
    let outcome = Pipeline {
        context,
        job_id,
        document_id,
        job_attempt: body.attempt as i32,
        attempt,
    }
    .run()
    .await;
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(lock_key(document_id))
        .execute(&mut lock_conn)
        .await;
    if unlocked.is_err() {
        // Never hand a connection that may still hold the lock back to the pool.
        drop(diesel_async::pooled_connection::deadpool::Object::take(lock_conn));
    }
    match outcome {
        Ok(()) | Err(Stop::Cancelled) => Ok(Outcome::Applied),
        Err(Stop::Gone) => Ok(Outcome::Duplicate),
        Err(Stop::Failed(error)) => Err(error),
    }
}

/// Vectors that took at least this long to make are saved for a retry; below
/// it, making them again costs about what a blob write and read would.
const SAVE_EMBEDDINGS_AFTER: Duration = Duration::from_millis(250);

struct Pipeline<'a> {
    context: &'a JobContext,
    job_id: Uuid,
    document_id: Uuid,
    job_attempt: i32,
    attempt: Try,
}

impl Pipeline<'_> {
    async fn run(&self) -> Result<(), Stop> {
        let context = self.context;
        let current = self.current().await?;
        if current.cancel_requested {
            return self.cancel().await;
        }
        let mut stage_ms = serde_json::Map::new();
        self.transition(
            StateChange {
                state: Some(state::PROCESSING.into()),
                stage: Some(Some(stage::PARSE.into())),
                try_number: Some(self.attempt.number as i32),
                max_tries: Some(self.attempt.max as i32),
                next_retry_at: Some(None),
                will_retry: Some(false),
                error_code: Some(None),
                error_message: Some(None),
                ..Default::default()
            },
            stage::PARSE,
            kind::STARTED,
            10,
            format!("try {} of {}", self.attempt.number, self.attempt.max),
            serde_json::json!({ "try": self.attempt.number, "max_tries": self.attempt.max }),
        )
        .await?;

        // PARSE, or reuse this attempt's parse result from an earlier try.
        let started = Instant::now();
        let key = parsed_key(self.document_id, self.job_attempt);
        let reused = match context.blobs.get(&key).await {
            Ok(bytes) => serde_json::from_slice::<ParsedDocument>(&bytes).ok(),
            Err(_) => None,
        };
        let parse_reused = reused.is_some();
        let parsed = match reused {
            Some(parsed) => parsed,
            None => {
                let bytes = context.blobs.get(&current.blob_key).await.map_err(transient)?;
                let format =
                    Format::parse(&current.format).ok_or_else(|| JobError::permanent("UNSUPPORTED_FORMAT", current.format.clone()))?;
                let limits = Limits {
                    time_budget: context.documents.parse_timeout,
                    ..Limits::default()
                };
                let parsed = tokio::task::spawn_blocking(move || parse::parse(format, &bytes, &limits))
                    .await
                    .map_err(|_| JobError::permanent("PARSER_CRASHED", "the parser stopped unexpectedly"))?
                    .map_err(|error| JobError::permanent(error.code(), error.to_string()))?;
                let encoded = serde_json::to_vec(&parsed).map_err(transient)?;
                context.blobs.put(&key, encoded.into()).await.map_err(transient)?;
                parsed
            }
        };
        let parse_ms = started.elapsed().as_millis() as i64;
        stage_ms.insert(stage::PARSE.into(), parse_ms.into());
        let characters = parsed.characters();
        self.transition(
            StateChange {
                title: (current.title.is_empty()).then(|| parsed.title.clone()).flatten(),
                pages: Some(parsed.pages.map(|p| p as i32)),
                characters: Some(Some(characters as i64)),
                stage_ms: Some(stage_ms.clone().into()),
                ..Default::default()
            },
            stage::PARSE,
            kind::COMPLETED,
            35,
            if parse_reused {
                "parse result reused from an earlier try".into()
            } else {
                format!("parsed {characters} characters")
            },
            serde_json::json!({
                "pages": parsed.pages,
                "characters": characters,
                "blocks": parsed.blocks.len(),
                "duration_ms": parse_ms,
                "resumed": parse_reused,
            }),
        )
        .await?;
        self.check_cancel().await?;

        // CHUNK
        let started = Instant::now();
        let settings = ChunkSettings {
            max_tokens: context.documents.chunk_tokens,
            overlap_tokens: context.documents.chunk_overlap,
        };
        let chunks = chunk(&parsed.blocks, settings);
        if chunks.is_empty() {
            return Err(JobError::permanent("NO_TEXT", "the document contains no text to index").into());
        }
        let chunk_ms = started.elapsed().as_millis() as i64;
        stage_ms.insert(stage::CHUNK.into(), chunk_ms.into());
        self.transition(
            StateChange {
                stage: Some(Some(stage::CHUNK.into())),
                stage_ms: Some(stage_ms.clone().into()),
                ..Default::default()
            },
            stage::CHUNK,
            kind::COMPLETED,
            45,
            format!("{} chunks", chunks.len()),
            serde_json::json!({ "chunks": chunks.len(), "duration_ms": chunk_ms }),
        )
        .await?;

        // EMBED, in batches; cancel is checked between them. An earlier try of
        // this attempt may have saved the vectors: they are reused if they were
        // made by this model from these very texts.
        let started = Instant::now();
        let texts: Vec<String> = chunks.iter().map(|c| with_headings(&c.section_path, &c.text)).collect();
        let fingerprint = saved::fingerprint(context.embedder.model(), &texts);
        let saved_key = embedded_key(self.document_id, self.job_attempt);
        // Only a try that found an earlier try's parse result can find its
        // vectors: a first try skips the lookup.
        let reused = if parse_reused {
            match context.blobs.get(&saved_key).await {
                Ok(stored) => saved::decode(&stored, &fingerprint, texts.len(), context.embedder.dimension()),
                Err(_) => None,
            }
        } else {
            None
        };
        let resumed = reused.is_some();
        let mut vectors_saved = resumed;
        let vectors = match reused {
            Some(vectors) => vectors,
            None => {
                let vectors = self.embed(&texts).await?;
                // Saved only when embedding cost more than a blob write would.
                if started.elapsed() >= SAVE_EMBEDDINGS_AFTER {
                    match context.blobs.put(&saved_key, saved::encode(&fingerprint, &vectors)).await {
                        Ok(()) => vectors_saved = true,
                        Err(error) => tracing::warn!(%error, key = saved_key, "vectors not saved; a retry would embed again"),
                    }
                }
                vectors
            }
        };
        let embed_ms = started.elapsed().as_millis() as i64;
        stage_ms.insert(stage::EMBED.into(), embed_ms.into());
        self.transition(
            StateChange {
                stage: Some(Some(stage::EMBED.into())),
                stage_ms: Some(stage_ms.clone().into()),
                ..Default::default()
            },
            stage::EMBED,
            kind::COMPLETED,
            85,
            if resumed {
                format!("reused {} vectors from an earlier try", vectors.len())
            } else {
                format!("embedded {} chunks with {}", vectors.len(), context.embedder.model())
            },
            serde_json::json!({ "chunks": vectors.len(), "model": context.embedder.model(), "dimension": context.embedder.dimension(), "duration_ms": embed_ms, "resumed": resumed }),
        )
        .await?;

        // INDEX: the chunks, the job's dedup record and READY in one transaction.
        let started = Instant::now();
        let rows: Vec<NewChunk> = chunks
            .into_iter()
            .zip(vectors)
            .enumerate()
            .map(|(ordinal, (c, v))| NewChunk {
                document_id: self.document_id,
                ordinal: ordinal as i32,
                text: c.text,
                section_path: c.section_path.into_iter().map(Some).collect(),
                page_start: c.page_start.map(|p| p as i32),
                page_end: c.page_end.map(|p| p as i32),
                token_count: c.token_count as i32,
                embedding: Embedding(pgvector::Vector::from(v)),
                embedding_model: context.embedder.model().to_owned(),
            })
            .collect();
        let count = rows.len();
        let mut conn = context.pool.get().await?;
        let committed = conn
            .transaction(async |conn| -> Result<Result<Option<_>, IndexModel>, diesel::result::Error> {
                let Some(locked) = document::lock(conn, self.document_id).await? else {
                    return Ok(Ok(None));
                };
                if locked.attempt != self.job_attempt || locked.cancel_requested || state::is_terminal(&locked.state) {
                    return Ok(Ok(None));
                }
                // The index's model, shared-locked: a reindex switching it
                // waits for this commit, then finds these chunks stale.
                let index = embedding_index::claim(conn, context.embedder.model(), context.embedder.dimension() as i32).await?;
                if index.model != context.embedder.model() {
                    return Ok(Err(index));
                }
                if !processed_job::claim(conn, self.job_id, context.worker_id).await? {
                    return Ok(Ok(None));
                }
                chunk::replace(conn, self.document_id, &rows).await?;
                stage_ms.insert(stage::INDEX.into(), (started.elapsed().as_millis() as i64).into());
                documents::transition(
                    conn,
                    self.document_id,
                    &StateChange {
                        state: Some(state::READY.into()),
                        stage: Some(Some(stage::INDEX.into())),
                        chunk_count: Some(Some(count as i32)),
                        stage_ms: Some(stage_ms.clone().into()),
                        completed_at: Some(Some(Utc::now())),
                        ..Default::default()
                    },
                    Progress {
                        stage: stage::INDEX,
                        kind: kind::COMPLETED,
                        percent: 100,
                        message: format!("indexed {count} chunks; ready"),
                        details: serde_json::json!({ "chunks": count, "duration_ms": started.elapsed().as_millis() as i64 }),
                    },
                )
                .await
                .map(Ok)
            })
            .await?;
        let committed = committed.map_err(|index| {
            transient(anyhow::anyhow!(
                "EMBEDDER_MISMATCH: the index is for {} ({} dimensions) but this worker embeds with {} ({}); \
                 run ReindexDocuments or set FOLIO_EMBEDDER to match",
                index.model,
                index.dimension,
                context.embedder.model(),
                context.embedder.dimension()
            ))
        })?;
        match committed {
            Some((_, event)) => {
                documents::announce(&context.cache, &event).await;
                // Indexed: the saved vectors are no longer needed.
                if vectors_saved {
                    let _ = context.blobs.delete(&saved_key).await;
                }
                Ok(())
            }
            None => {
                // Cancelled, deleted or superseded while embedding.
                if self.current().await.map(|d| d.cancel_requested).unwrap_or(false) {
                    return self.cancel().await;
                }
                Err(Stop::Gone)
            }
        }
    }

    /// The document, if it is still on this job's attempt and not finished.
    async fn current(&self) -> Result<Document, Stop> {
        let mut conn = self.context.pool.get().await?;
        match document::find(&mut conn, self.document_id).await? {
            Some(d) if d.attempt == self.job_attempt && !state::is_terminal(&d.state) => Ok(d),
            _ => Err(Stop::Gone),
        }
    }

    /// Embeds `texts` in batches of `FOLIO_EMBED_BATCH`, checking for cancel
    /// between batches and reporting progress on long documents.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Stop> {
        let context = self.context;
        let mut vectors = Vec::with_capacity(texts.len());
        let batches = texts.len().div_ceil(context.documents.embed_batch);
        let mut reported = 0;
        for (index, batch) in texts.chunks(context.documents.embed_batch).enumerate() {
            let embedded = context.embedder.embed(batch).await.map_err(|error| match error {
                EmbedError::Transient(message) => Stop::Failed(JobError::Transient(anyhow::anyhow!(message))),
                EmbedError::Permanent(message) => Stop::Failed(JobError::permanent("EMBEDDING_FAILED", message)),
            })?;
            vectors.extend(embedded);
            self.check_cancel().await?;
            // A progress event at most every quarter, for long documents.
            let done = (index + 1) * 4 / batches;
            if batches >= 8 && done > reported && index + 1 < batches {
                reported = done;
                self.transition(
                    StateChange::default(),
                    stage::EMBED,
                    kind::PROGRESS,
                    45 + (40 * (index + 1) / batches) as i32,
                    format!("embedded {} of {} chunks", vectors.len(), texts.len()),
                    serde_json::json!({ "embedded": vectors.len(), "chunks": texts.len() }),
                )
                .await?;
            }
        }
        Ok(vectors)
    }

    async fn check_cancel(&self) -> Result<(), Stop> {
        if self.current().await?.cancel_requested {
            return self.cancel().await;
        }
        Ok(())
    }

    /// Removes partial results and marks the document CANCELLED.
    async fn cancel(&self) -> Result<(), Stop> {
        let mut conn = self.context.pool.get().await?;
        let document_id = self.document_id;
        let event = conn
            .transaction(async |conn| {
                chunk::delete_for(conn, document_id).await?;
                documents::transition(
                    conn,
                    document_id,
                    &StateChange {
                        state: Some(state::CANCELLED.into()),
                        will_retry: Some(false),
                        completed_at: Some(Some(Utc::now())),
                        ..Default::default()
                    },
                    Progress {
                        stage: stage::PARSE,
                        kind: kind::CANCELLED,
                        percent: 100,
                        message: "cancelled; partial results removed".into(),
                        details: serde_json::json!({}),
                    },
                )
                .await
            })
            .await?;
        if let Some((_, event)) = event {
            documents::announce(&self.context.cache, &event).await;
        }
        let _ = self.context.blobs.delete(&parsed_key(document_id, self.job_attempt)).await;
        let _ = self.context.blobs.delete(&embedded_key(document_id, self.job_attempt)).await;
        Err(Stop::Cancelled)
    }

    #[allow(clippy::too_many_arguments)]
    async fn transition(
        &self,
        change: StateChange,
        stage: &str,
        kind: &str,
        percent: i32,
        message: String,
        details: serde_json::Value,
    ) -> Result<(), Stop> {
        let mut conn = self.context.pool.get().await?;
        let document_id = self.document_id;
        let job_attempt = self.job_attempt;
        let event = conn
            .transaction(async |conn| {
                match document::lock(conn, document_id).await? {
                    Some(d) if d.attempt == job_attempt && !state::is_terminal(&d.state) => {}
                    _ => return Ok(None),
                }
                documents::transition(
                    conn,
                    document_id,
                    &change,
                    Progress {
                        stage,
                        kind,
                        percent,
                        message,
                        details,
                    },
                )
                .await
            })
            .await?;
        match event {
            Some((_, event)) => {
                documents::announce(&self.context.cache, &event).await;
                Ok(())
            }
            None => Err(Stop::Gone),
        }
    }
}

/// A transient failure will be retried after `delay`: RETRY_WAIT with the next
/// time, the error and "will retry".
pub(super) async fn retry_scheduled(context: &JobContext, body: &ProcessDocument, attempt: Try, delay: Duration, error: &anyhow::Error) {
    let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
    let message = folio_shared::startup::one_line(&format!("{error:#}"));
    settle(
        context,
        body,
        StateChange {
            state: Some(state::RETRY_WAIT.into()),
            try_number: Some(attempt.number as i32),
            max_tries: Some(attempt.max as i32),
            next_retry_at: Some(Some(next)),
            error_code: Some(Some("UNAVAILABLE".into())),
            error_message: Some(Some(message.clone())),
            will_retry: Some(true),
            ..Default::default()
        },
        kind::RETRY_SCHEDULED,
        10,
        format!("try {} of {} failed: {message}; retrying at {}", attempt.number, attempt.max, next.to_rfc3339()),
        serde_json::json!({ "try": attempt.number, "max_tries": attempt.max, "next_retry_at": next.to_rfc3339(), "error_code": "UNAVAILABLE" }),
    )
    .await;
}

/// The job failed for good: FAILED with the error code.
pub(super) async fn failed(context: &JobContext, body: &ProcessDocument, attempt: Try, code: &str, message: &str) {
    settle(
        context,
        body,
        StateChange {
            state: Some(state::FAILED.into()),
            try_number: Some(attempt.number as i32),
            max_tries: Some(attempt.max as i32),
            next_retry_at: Some(None),
            error_code: Some(Some(code.into())),
            error_message: Some(Some(message.into())),
            will_retry: Some(false),
            completed_at: Some(Some(Utc::now())),
            ..Default::default()
        },
        kind::FAILED,
        100,
        format!("failed ({code}): {message}"),
        serde_json::json!({ "try": attempt.number, "max_tries": attempt.max, "error_code": code }),
    )
    .await;
}

/// Records a failure outcome if the document is still on the job's attempt and
/// not finished. Failures to record are logged: the job is settled regardless.
async fn settle(
    context: &JobContext,
    body: &ProcessDocument,
    change: StateChange,
    kind: &str,
    percent: i32,
    message: String,
    details: serde_json::Value,
) {
    let Ok(document_id) = body.document_id.parse::<Uuid>() else {
        return;
    };
    let recorded = async {
        let mut conn = context.pool.get().await?;
        let event = conn
            .transaction(async |conn| {
                let Some(current) = document::lock(conn, document_id).await? else {
                    return Ok(None);
                };
                if current.attempt != body.attempt as i32 || state::is_terminal(&current.state) {
                    return Ok(None);
                }
                let stage = current.stage.clone().unwrap_or_else(|| stage::PARSE.into());
                documents::transition(
                    conn,
                    document_id,
                    &change,
                    Progress {
                        stage: &stage,
                        kind,
                        percent,
                        message,
                        details,
                    },
                )
                .await
            })
            .await?;
        anyhow::Ok(event)
    }
    .await;
    match recorded {
        Ok(Some((_, event))) => documents::announce(&context.cache, &event).await,
        Ok(None) => {}
        Err(error) => tracing::error!(error = format!("{error:#}"), %document_id, "could not record the job's failure"),
    }
}

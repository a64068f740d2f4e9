//! The ProcessDocument job: parse, chunk, embed and index one document.
//!
//! Each stage is one method and commits its lifecycle transition (with its
//! event) on its own, then announces the event on Redis. The parse result is
//! kept in the blob store per attempt, so a redelivered job (a worker killed
//! mid-way) resumes after PARSE; chunking is deterministic and reruns. Vectors
//! that took a while to make are saved too (`pipeline::embed::saved`), so a job
//! redelivered after EMBED resumes at INDEX; cheap ones (the `hash` embedder)
//! are simply made again. The chunks are replaced, the job id recorded and the
//! document marked READY in one transaction, so a document has exactly one set
//! of chunks whatever crashes when.
//!
//! A delivery runs the document only while it holds the document's advisory
//! lock (`lifecycle::try_lock`). A delivery that finds it held (a duplicate:
//! a relay that published twice, a redelivery while the first worker goes on)
//! waits for the holder and touches nothing meanwhile: once the holder is done
//! the document is terminal or on another attempt and the duplicate is acked
//! as such, or it is waiting for a retry and the duplicate runs it. Waiting is
//! never one of the document's tries and never fails it.
//!
//! A little over 500 lines: one method per stage of one job; the failure
//! recording is in `failure.rs`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use diesel_async::AsyncConnection as _;
use folio_db::{
    PooledConnection,
    documents::{
        self, embedded_key,
        lifecycle::{self, Found, LifecycleError, Moved, Note, StageDone, Try},
        parsed_key, searchable_key,
        state::Stage,
    },
    models::{
        chunk,
        document::{self, Document},
        embedding_index::{self, IndexModel},
        processed_job,
    },
};
use folio_models::embed::{EmbedError, Embedder, saved};
use folio_parse::{
    chunk::{Chunk, with_headings},
    parse::{Format, Limits, ParsedDocument},
};
use folio_proto::queue::v1::ProcessDocument;
use uuid::Uuid;

mod failure;

use failure::record_failure;
pub(super) use failure::{failed, retry_scheduled};

use super::{Delivery, JobContext, JobError, Outcome, parse_uuid};
use crate::ocr;

/// Why processing stopped early.
enum Stop {
    Failed(JobError),
    /// The user cancelled; the document is now CANCELLED.
    Cancelled,
    /// The document was deleted, or moved on to another attempt or try.
    Gone,
}

impl<E: Into<JobError>> From<E> for Stop {
    fn from(error: E) -> Self {
        Stop::Failed(error.into())
    }
}

/// Adds a stage's duration to `folio_stage_duration_seconds`.
fn record_duration(stage: Stage, ms: i64) {
    metrics::histogram!(folio_core::metrics::STAGE_DURATION, "stage" => stage.as_str()).record(ms as f64 / 1000.0);
}

fn transient(error: impl Into<anyhow::Error>) -> Stop {
    Stop::Failed(JobError::Transient(error.into()))
}

/// The try a delivery makes at its job's attempt.
fn try_of(body: &ProcessDocument, delivery: Delivery) -> Try {
    Try {
        attempt: body.attempt as i32,
        number: delivery.number as i32,
        max: delivery.max as i32,
        token: delivery.token,
    }
}

pub(super) async fn run(context: &JobContext, job_id: Uuid, body: &ProcessDocument, delivery: Delivery) -> Result<Outcome, JobError> {
    let document_id = parse_uuid("document_id", &body.document_id)?;
    let at = try_of(body, delivery);
    let Some(lock_conn) = hold(context, document_id, at.attempt).await? else {
        return Ok(Outcome::Duplicate);
    };
    let outcome = Pipeline {
        context,
        embedder: context.models.embedder(),
        job_id,
        document_id,
        at,
        stage_ms: serde_json::Map::new(),
    }
    .run()
    .await;
    // Recorded while the lock is held, so a document an earlier, crashed try
    // left PROCESSING is settled too. The consumer records it again after the
    // retry's publish; the lifecycle refuses that second write.
    if let Err(Stop::Failed(error)) = &outcome {
        record_failure(context, document_id, &at, delivery.retry_delay, error).await;
    }
    release(lock_conn, document_id).await;
    match outcome {
        Ok(()) | Err(Stop::Cancelled) => Ok(Outcome::Applied),
        Err(Stop::Gone) => Ok(Outcome::Duplicate),
        Err(Stop::Failed(error)) => Err(error),
    }
}

/// Lets go of the document's lock taken on `conn`; a connection that may
/// still hold it is never handed back to the pool.
async fn release(mut conn: PooledConnection, document_id: Uuid) {
    if lifecycle::unlock(&mut conn, document_id).await.is_err() {
        drop(PooledConnection::take(conn));
    }
}

/// Longest pause between two looks at a document another delivery holds.
const HELD_POLL_MAX: Duration = Duration::from_secs(1);

/// Takes the document's lock, waiting while another delivery holds it. None
/// when, meanwhile or already, there is nothing left for this delivery: the
/// document is gone, finished, or on another attempt.
async fn hold(context: &JobContext, document_id: Uuid, attempt: i32) -> Result<Option<PooledConnection>, JobError> {
    let mut pause = Duration::from_millis(50);
    let mut waited = false;
    loop {
        let mut conn = context.pool.get().await?;
        if lifecycle::try_lock(&mut conn, document_id).await? {
            if waited {
                tracing::info!(%document_id, "the other delivery let go of the document");
            }
            return Ok(Some(conn));
        }
        match document::find(&mut conn, document_id).await? {
            Some(d) if d.attempt == attempt && !d.state.is_terminal() => {}
            _ => return Ok(None),
        }
        drop(conn);
        if !waited {
            tracing::info!(%document_id, "another delivery is processing the document; waiting for it");
            waited = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(HELD_POLL_MAX);
    }
}

/// Vectors that took at least this long to make are saved for a retry; below
/// it, making them again costs about what a blob write and read would.
const SAVE_EMBEDDINGS_AFTER: Duration = Duration::from_millis(250);

struct Pipeline<'a> {
    context: &'a JobContext,
    /// The worker's embedder when the job started, used to its end.
    embedder: Arc<dyn Embedder>,
    job_id: Uuid,
    document_id: Uuid,
    at: Try,
    /// Milliseconds per stage so far, recorded with each stage.
    stage_ms: serde_json::Map<String, serde_json::Value>,
}

/// What PARSE hands on.
struct Parsed {
    document: ParsedDocument,
    /// Found from an earlier try of this attempt rather than parsed now.
    reused: bool,
}

/// What EMBED hands on.
struct Embedded {
    vectors: Vec<Vec<f32>>,
    /// Saved in the blob store, to delete once indexed.
    saved: bool,
}

impl Pipeline<'_> {
    async fn run(mut self) -> Result<(), Stop> {
        let current = self.current().await?;
        self.write(Write::StartTry).await?;
        let parsed = self.parse(&current).await?;
        self.check_cancel().await?;
        let (chunks, chunking) = self.chunk(&parsed).await?;
        let embedded = self.embed(&chunks, parsed.reused).await?;
        self.index(chunks, chunking, embedded).await
    }

    /// PARSE, or reuse this attempt's parse result from an earlier try.
    async fn parse(&mut self, current: &Document) -> Result<Parsed, Stop> {
        let context = self.context;
        let started = Instant::now();
        let key = parsed_key(self.document_id, self.at.attempt);
        let reused = match context.blobs.get(&key).await {
            Ok(bytes) => serde_json::from_slice::<ParsedDocument>(&bytes).ok(),
            Err(_) => None,
        };
        let parsed = match reused {
            Some(document) => Parsed { document, reused: true },
            None => {
                let bytes = context.blobs.get(&current.blob_key).await.map_err(transient)?;
                let format =
                    Format::parse(&current.format).ok_or_else(|| JobError::permanent("UNSUPPORTED_FORMAT", current.format.clone()))?;
                let limits = Limits {
                    time_budget: context.documents.parse_timeout,
                    ..Limits::default()
                };
                let mut document = match format {
                    // An image has no text but what OCR reads.
                    Format::Image => ParsedDocument::default(),
                    _ => context.sandbox.parse(format, bytes.clone(), limits.clone()).await?,
                };
                if format == Format::Image || !document.textless_pages.is_empty() {
                    self.read_by_ocr(format, &bytes, &mut document, &limits).await?;
                }
                let encoded = serde_json::to_vec(&document).map_err(transient)?;
                context.blobs.put(&key, encoded.into()).await.map_err(transient)?;
                Parsed { document, reused: false }
            }
        };
        let parse_ms = started.elapsed().as_millis() as i64;
        let characters = parsed.document.characters();
        let note = Note {
            percent: 35,
            message: match (&parsed.document.ocr, parsed.reused) {
                (_, true) => "parse result reused from an earlier try".into(),
                (Some(ocr), false) => format!("parsed {characters} characters ({} pages by OCR)", ocr.pages.len()),
                (None, false) => format!("parsed {characters} characters"),
            },
            details: serde_json::json!({
                "pages": parsed.document.pages,
                "ocr_pages": parsed.document.ocr.as_ref().map(|o| o.pages.iter().map(|p| p.page).collect::<Vec<_>>()),
                "ocr_confidence": parsed.document.ocr.as_ref().and_then(|o| o.mean_confidence()),
                "characters": characters,
                "blocks": parsed.document.blocks.len(),
                "duration_ms": parse_ms,
                "resumed": parsed.reused,
            }),
        };
        let done = StageDone {
            title: current.title.is_empty().then(|| parsed.document.title.clone()).flatten(),
            pages: Some(parsed.document.pages.map(|p| p as i32)),
            characters: Some(Some(characters as i64)),
            ..self.stage_done(Stage::Parse, parse_ms, note)
        };
        self.record_stage(done).await?;
        Ok(parsed)
    }

    /// The part of PARSE that reads scanned pages (a PDF's `textless_pages`,
    /// or every page of an image) by OCR, page by page: a progress event after
    /// each page, cancel honoured between pages. The searchable PDF is saved
    /// before the parse result, so a parse result with `ocr` has one.
    async fn read_by_ocr(&self, format: Format, bytes: &[u8], document: &mut ParsedDocument, limits: &Limits) -> Result<(), Stop> {
        let context = self.context;
        let source = match format {
            Format::Image => ocr::Source::Image,
            _ => ocr::Source::Pdf {
                pages: document.textless_pages.clone(),
                page_count: document.pages.unwrap_or(0),
            },
        };
        let mut reading = context.ocr.prepare(source, bytes).await?;
        let pages = reading.pages();
        let mut recognised = Vec::with_capacity(pages.len());
        for (index, number) in pages.iter().enumerate() {
            self.check_cancel().await?;
            let page = reading.read(index).await?;
            let note = Note {
                percent: 5 + (30 * (index + 1) / pages.len()) as i32,
                message: format!("OCR page {} of {}", index + 1, pages.len()),
                details: serde_json::json!({
                    "page": number,
                    "ocr_done": index + 1,
                    "ocr_pages": pages.len(),
                    "confidence": page.confidence.map(|c| c.round()),
                }),
            };
            self.write(Write::Progress(Stage::Parse, note)).await?;
            recognised.push(page);
        }
        let searchable = reading.searchable_pdf().await?;
        let key = searchable_key(self.document_id, self.at.attempt);
        context.blobs.put(&key, searchable.into()).await.map_err(transient)?;
        if format == Format::Image {
            document.pages = Some(pages.len() as u32);
        }
        let report = reading.report().clone();
        folio_parse::parse::ocr::insert_pages(document, recognised, report, limits)
            .map_err(|error| JobError::permanent(error.code(), error.to_string()))?;
        Ok(())
    }

    /// CHUNK: deterministic, so a redelivery makes the same chunks again.
    /// Returns them with how they were made.
    async fn chunk(&mut self, parsed: &Parsed) -> Result<(Vec<Chunk>, String), Stop> {
        let started = Instant::now();
        let (chunks, chunking) = self.context.chunk(self.embedder.as_ref(), &parsed.document.blocks);
        if chunks.is_empty() {
            return Err(JobError::permanent("NO_TEXT", "the document contains no text to index").into());
        }
        let chunk_ms = started.elapsed().as_millis() as i64;
        let note = Note {
            percent: 45,
            message: format!("{} chunks", chunks.len()),
            details: serde_json::json!({ "chunks": chunks.len(), "duration_ms": chunk_ms }),
        };
        let done = self.stage_done(Stage::Chunk, chunk_ms, note);
        self.record_stage(done).await?;
        Ok((chunks, chunking))
    }

    /// EMBED, in batches; cancel is checked between them. An earlier try of
    /// this attempt may have saved the vectors: they are reused if they were
    /// made by this model from these very texts.
    async fn embed(&mut self, chunks: &[Chunk], parse_reused: bool) -> Result<Embedded, Stop> {
        let context = self.context;
        let started = Instant::now();
        let texts: Vec<String> = chunks.iter().map(|c| with_headings(&c.section_path, &c.text)).collect();
        let fingerprint = saved::fingerprint(self.embedder.model(), &texts);
        let saved_key = embedded_key(self.document_id, self.at.attempt);
        // Only a try that found an earlier try's parse result can find its
        // vectors: a first try skips the lookup.
        let reused = if parse_reused {
            match context.blobs.get(&saved_key).await {
                Ok(stored) => saved::decode(&stored, &fingerprint, texts.len(), self.embedder.dimension()),
                Err(_) => None,
            }
        } else {
            None
        };
        let resumed = reused.is_some();
        let embedded = match reused {
            Some(vectors) => Embedded { vectors, saved: true },
            None => {
                let vectors = self.embed_batches(&texts).await?;
                // Saved only when embedding cost more than a blob write would.
                let mut saved = false;
                if started.elapsed() >= SAVE_EMBEDDINGS_AFTER {
                    match context.blobs.put(&saved_key, saved::encode(&fingerprint, &vectors)).await {
                        Ok(()) => saved = true,
                        Err(error) => tracing::warn!(%error, key = saved_key, "vectors not saved; a retry would embed again"),
                    }
                }
                Embedded { vectors, saved }
            }
        };
        let embed_ms = started.elapsed().as_millis() as i64;
        let count = embedded.vectors.len();
        let note = Note {
            percent: 85,
            message: if resumed {
                format!("reused {count} vectors from an earlier try")
            } else {
                format!("embedded {count} chunks with {}", self.embedder.model())
            },
            details: serde_json::json!({ "chunks": count, "model": self.embedder.model(), "dimension": self.embedder.dimension(), "duration_ms": embed_ms, "resumed": resumed }),
        };
        let done = self.stage_done(Stage::Embed, embed_ms, note);
        self.record_stage(done).await?;
        Ok(embedded)
    }

    /// Embeds `texts` in batches of `FOLIO_EMBED_BATCH`, checking for cancel
    /// between batches and reporting progress on long documents.
    async fn embed_batches(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Stop> {
        let context = self.context;
        let mut vectors = Vec::with_capacity(texts.len());
        let batches = texts.len().div_ceil(context.documents.embed_batch);
        let mut reported = 0;
        for (index, batch) in texts.chunks(context.documents.embed_batch).enumerate() {
            let embedded = self.embedder.embed(batch).await.map_err(|error| match error {
                EmbedError::Transient(message) => Stop::Failed(JobError::Transient(anyhow::anyhow!(message))),
                EmbedError::Permanent(message) => Stop::Failed(JobError::permanent(
                    "EMBEDDING_FAILED",
                    super::for_client("the embedding model refused the document's text", &message),
                )),
            })?;
            vectors.extend(embedded);
            self.check_cancel().await?;
            // A progress event at most every quarter, for long documents.
            let done = (index + 1) * 4 / batches;
            if batches >= 8 && done > reported && index + 1 < batches {
                reported = done;
                let note = Note {
                    percent: 45 + (40 * (index + 1) / batches) as i32,
                    message: format!("embedded {} of {} chunks", vectors.len(), texts.len()),
                    details: serde_json::json!({ "embedded": vectors.len(), "chunks": texts.len() }),
                };
                self.write(Write::Progress(Stage::Embed, note)).await?;
            }
        }
        Ok(vectors)
    }

    /// INDEX: the chunks, the job's dedup record and READY in one transaction.
    async fn index(mut self, chunks: Vec<Chunk>, chunking: String, embedded: Embedded) -> Result<(), Stop> {
        let context = self.context;
        let started = Instant::now();
        let rows = super::chunk_rows(self.document_id, chunks, embedded.vectors, self.embedder.model());
        let chunked = lifecycle::Chunked {
            count: rows.len() as i32,
            chunking,
        };
        let mut conn = context.pool.get().await?;
        let (id, at, job_id) = (self.document_id, self.at, self.job_id);
        let stage_ms = &mut self.stage_ms;
        let committed = conn
            .transaction(async |conn| -> Result<Option<Moved>, IndexError> {
                // The index's model, shared-locked: a reindex switching it
                // waits for this commit, then finds these chunks stale.
                let index = embedding_index::claim(conn, self.embedder.model(), self.embedder.dimension() as i32).await?;
                if index.model != self.embedder.model() {
                    return Err(IndexError::Mismatch(index));
                }
                if !processed_job::claim(conn, job_id, context.worker_id).await? {
                    return Ok(None);
                }
                chunk::replace(conn, id, &rows).await?;
                let index_ms = started.elapsed().as_millis() as i64;
                stage_ms.insert(Stage::Index.as_str().into(), index_ms.into());
                let note = Note {
                    percent: 100,
                    message: format!("indexed {} chunks; ready", chunked.count),
                    details: serde_json::json!({ "chunks": chunked.count, "duration_ms": index_ms }),
                };
                let moved = lifecycle::ready(conn, id, &at, &chunked, stage_ms.clone().into(), note).await?;
                Ok(Some(moved))
            })
            .await;
        let moved = match committed {
            Ok(Some(moved)) => {
                record_duration(Stage::Index, started.elapsed().as_millis() as i64);
                moved
            }
            // This job's effect was committed by an earlier delivery.
            Ok(None) => return Err(Stop::Gone),
            Err(IndexError::Mismatch(index)) => {
                return Err(transient(anyhow::Error::new(super::ForClient(format!(
                    "EMBEDDER_MISMATCH: the index is for {} ({} dimensions) but this worker embeds with {} ({}); \
                     run ReindexDocuments or set FOLIO_EMBEDDER to match",
                    index.model,
                    index.dimension,
                    self.embedder.model(),
                    self.embedder.dimension()
                )))));
            }
            Err(IndexError::Lifecycle(error)) => return self.settle_write(Err(error)).await,
        };
        if let Some(event) = &moved.event {
            documents::announce(&context.cache, event).await;
        }
        // Indexed: the saved vectors are no longer needed.
        if embedded.saved {
            let _ = context.blobs.delete(&embedded_key(self.document_id, self.at.attempt)).await;
        }
        Ok(())
    }

    /// The results of `stage`, which took `ms`, to record with `note`.
    fn stage_done(&mut self, stage: Stage, ms: i64, note: Note) -> StageDone {
        record_duration(stage, ms);
        self.stage_ms.insert(stage.as_str().into(), ms.into());
        StageDone {
            stage,
            note,
            title: None,
            pages: None,
            characters: None,
            stage_ms: self.stage_ms.clone().into(),
        }
    }

    async fn record_stage(&self, done: StageDone) -> Result<(), Stop> {
        self.write(Write::StageDone(done)).await
    }

    /// Runs one lifecycle transition of this try in a transaction of its own,
    /// then settles it (see [`Self::settle_write`]).
    async fn write(&self, write: Write) -> Result<(), Stop> {
        let mut conn = self.context.pool.get().await?;
        let (id, at) = (self.document_id, self.at);
        let moved = conn
            .transaction(async |conn| match write {
                Write::StartTry => lifecycle::start_try(conn, id, &at, &self.context.lease()).await,
                Write::StageDone(done) => lifecycle::stage_done(conn, id, &at, done).await,
                Write::Progress(stage, note) => lifecycle::progress(conn, id, &at, stage, note).await,
            })
            .await;
        self.settle_write(moved).await
    }

    /// Announces a transition that happened; turns one that was refused into
    /// the reason to stop: a requested cancel is carried out, anything else
    /// means the document moved on without this try.
    async fn settle_write(&self, moved: Result<Moved, LifecycleError>) -> Result<(), Stop> {
        match moved {
            Ok(moved) => {
                if let Some(event) = &moved.event {
                    documents::announce(&self.context.cache, event).await;
                }
                Ok(())
            }
            Err(LifecycleError::Refused {
                found:
                    Found {
                        cancel_requested: true,
                        attempt,
                        state,
                        ..
                    },
                ..
            }) if attempt == self.at.attempt && !state.is_terminal() => self.cancel().await,
            Err(LifecycleError::Database(error)) => Err(transient(error)),
            Err(refused) => {
                tracing::info!(document_id = %self.document_id, reason = %refused, "the document moved on; stopping");
                Err(Stop::Gone)
            }
        }
    }

    /// The document, if it is still on this job's attempt and not finished.
    async fn current(&self) -> Result<Document, Stop> {
        let mut conn = self.context.pool.get().await?;
        match document::find(&mut conn, self.document_id).await? {
            Some(d) if d.attempt == self.at.attempt && !d.state.is_terminal() => Ok(d),
            _ => Err(Stop::Gone),
        }
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
        let (document_id, attempt) = (self.document_id, self.at.attempt);
        let moved = conn
            .transaction(async |conn| {
                chunk::delete_for(conn, document_id).await?;
                lifecycle::cancelled(conn, document_id, attempt).await
            })
            .await;
        match moved {
            Ok(moved) => {
                if let Some(event) = &moved.event {
                    documents::announce(&self.context.cache, event).await;
                }
            }
            Err(LifecycleError::Database(error)) => return Err(transient(error)),
            Err(refused) => tracing::info!(%document_id, reason = %refused, "cancel already settled"),
        }
        let _ = self.context.blobs.delete(&parsed_key(document_id, attempt)).await;
        let _ = self.context.blobs.delete(&embedded_key(document_id, attempt)).await;
        Err(Stop::Cancelled)
    }
}

/// The transitions a running try makes on its own (INDEX makes `ready` in
/// the transaction with the chunks).
enum Write {
    StartTry,
    StageDone(StageDone),
    Progress(Stage, Note),
}

/// Why the INDEX transaction did not commit.
enum IndexError {
    Mismatch(IndexModel),
    Lifecycle(LifecycleError),
}

impl From<LifecycleError> for IndexError {
    fn from(error: LifecycleError) -> Self {
        IndexError::Lifecycle(error)
    }
}

impl From<diesel::result::Error> for IndexError {
    fn from(error: diesel::result::Error) -> Self {
        IndexError::Lifecycle(LifecycleError::Database(error))
    }
}

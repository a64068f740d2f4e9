//! The ReindexDocument job: make a READY document's chunks again for the
//! embedder the index records (chunked from the saved parse result, never by
//! parsing again, so they fit the model's window) and embed them. The new
//! chunks, the job's dedup record and the document's event commit together.

use diesel_async::AsyncConnection as _;
use folio_db::{
    documents::{
        self,
        lifecycle::{self, Chunked, Note},
        parsed_key,
        state::State,
    },
    models::{chunk, document, embedding_index, processed_job},
};
use folio_models::embed::EmbedError;
use folio_parse::{chunk::with_headings, parse::ParsedDocument};
use folio_proto::queue::v1::ReindexDocument;
use tokio::time::Instant;
use uuid::Uuid;

use super::{JobContext, JobError, Outcome, parse_uuid};

pub(super) async fn run(context: &JobContext, job_id: Uuid, body: &ReindexDocument) -> Result<Outcome, JobError> {
    let document_id = parse_uuid("document_id", &body.document_id)?;
    let embedder = context.models.embedder();
    let model = embedder.model();
    let mut conn = context.pool.get().await?;
    let Some(index) = embedding_index::get(&mut conn).await? else {
        return Ok(Outcome::Applied);
    };
    if index.model != body.model {
        // The index moved on to another model; that reindex queued its own job.
        return Ok(Outcome::Applied);
    }
    if index.model != model {
        return Err(JobError::Transient(anyhow::anyhow!(
            "EMBEDDER_MISMATCH: the index is being re-embedded with {} but this worker embeds with {model}",
            index.model
        )));
    }
    let found = match document::find(&mut conn, document_id).await? {
        Some(found) if found.state == State::Ready => found,
        _ => return Ok(Outcome::Applied),
    };
    drop(conn);

    let started = Instant::now();
    let stored = context
        .blobs
        .get(&parsed_key(document_id, found.attempt))
        .await
        .map_err(|error| JobError::Transient(anyhow::anyhow!("the parse result of attempt {}: {error}", found.attempt)))?;
    let parsed: ParsedDocument = serde_json::from_slice(&stored)
        .map_err(|error| JobError::permanent("PARSE_RESULT_UNREADABLE", format!("the saved parse result: {error}")))?;
    let (chunks, chunking) = context.chunk(embedder.as_ref(), &parsed.blocks);
    let texts: Vec<String> = chunks.iter().map(|c| with_headings(&c.section_path, &c.text)).collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(context.documents.embed_batch) {
        vectors.extend(embedder.embed(batch).await.map_err(|error| match error {
            EmbedError::Transient(message) => JobError::Transient(anyhow::anyhow!(message)),
            EmbedError::Permanent(message) => JobError::permanent("EMBED_FAILED", message),
        })?);
    }
    let rows = super::chunk_rows(document_id, chunks, vectors, model);
    let chunked = Chunked {
        count: rows.len() as i32,
        chunking,
    };

    let mut conn = context.pool.get().await?;
    let event = conn
        .transaction(async |conn| -> Result<_, JobError> {
            if !processed_job::claim(conn, job_id, context.worker_id).await? {
                return Ok(None);
            }
            chunk::replace(conn, document_id, &rows).await?;
            let note = Note {
                percent: 100,
                message: format!(
                    "made {} chunks again from the parse result and embedded them with {model}",
                    rows.len()
                ),
                details: serde_json::json!({
                    "chunks": rows.len(),
                    "model": model,
                    "chunking": chunked.chunking,
                    "reindex": true,
                    "duration_ms": started.elapsed().as_millis() as i64,
                }),
            };
            // Refused (the document was retried or deleted meanwhile): the
            // new chunks roll back with it.
            let moved = lifecycle::reindexed(conn, document_id, &chunked, note).await?;
            Ok(moved.event)
        })
        .await?;
    match event {
        Some(event) => {
            documents::announce(&context.cache, &event).await;
            Ok(Outcome::Applied)
        }
        None => Ok(Outcome::Duplicate),
    }
}

//! The ReindexDocument job: re-embed a READY document's chunks with the model
//! the index records, without parsing again. The new vectors, the job's dedup
//! record and the document's event commit together.

use diesel_async::AsyncConnection as _;
use folio_db::{
    documents::{
        self,
        lifecycle::{self, Note},
        state::State,
    },
    models::{
        chunk::{self, Embedding},
        document, embedding_index, processed_job,
    },
};
use folio_models::embed::EmbedError;
use folio_proto::queue::v1::ReindexDocument;
use tokio::time::Instant;
use uuid::Uuid;

use super::{JobContext, JobError, Outcome, parse_uuid};

pub(super) async fn run(context: &JobContext, job_id: Uuid, body: &ReindexDocument) -> Result<Outcome, JobError> {
    let document_id = parse_uuid("document_id", &body.document_id)?;
    let model = context.embedder.model();
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
    match document::find(&mut conn, document_id).await? {
        Some(found) if found.state == State::Ready => {}
        _ => return Ok(Outcome::Applied),
    }
    let stale = chunk::stale(&mut conn, document_id, model).await?;
    drop(conn);

    let started = Instant::now();
    let texts: Vec<String> = stale.iter().map(chunk::Chunk::with_headings).collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(context.documents.embed_batch) {
        vectors.extend(context.embedder.embed(batch).await.map_err(|error| match error {
            EmbedError::Transient(message) => JobError::Transient(anyhow::anyhow!(message)),
            EmbedError::Permanent(message) => JobError::permanent("EMBED_FAILED", message),
        })?);
    }

    let mut conn = context.pool.get().await?;
    let event = conn
        .transaction(async |conn| -> Result<_, JobError> {
            if !processed_job::claim(conn, job_id, context.worker_id).await? {
                return Ok(None);
            }
            for (stale, vector) in stale.iter().zip(vectors) {
                chunk::set_embedding(conn, stale.id, Embedding(pgvector::Vector::from(vector)), model).await?;
            }
            let note = Note {
                percent: 100,
                message: format!("re-embedded {} chunks with {model}", stale.len()),
                details: serde_json::json!({
                    "chunks": stale.len(),
                    "model": model,
                    "reindex": true,
                    "duration_ms": started.elapsed().as_millis() as i64,
                }),
            };
            // Refused (the document was retried or deleted meanwhile): the
            // new vectors roll back with it.
            let moved = lifecycle::reindexed(conn, document_id, note).await?;
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

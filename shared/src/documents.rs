//! What the api-server and the workers both do to documents: append an event
//! together with the state change it reports, and announce it on Redis after
//! the commit so watchers see it at once (Postgres stays the record).

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::{
    cache::Cache,
    db::models::{
        document::{self, Document, StateChange},
        document_event::{self, DocumentEvent, NewDocumentEvent},
    },
};

/// The Redis channel that carries document event notices (after the prefix).
pub const EVENTS_CHANNEL: &str = "document-events";

/// The blob key of a document's parse result for `attempt`.
pub fn parsed_key(document_id: Uuid, attempt: i32) -> String {
    format!("parsed/{document_id}/{attempt}.json")
}

/// The blob key of a document's saved vectors for `attempt` (see
/// `pipeline::embed::saved`); removed once the attempt is indexed.
pub fn embedded_key(document_id: Uuid, attempt: i32) -> String {
    format!("embedded/{document_id}/{attempt}.bin")
}

/// Stage names as stored.
pub mod stage {
    pub const STORE: &str = "STORE";
    pub const PARSE: &str = "PARSE";
    pub const CHUNK: &str = "CHUNK";
    pub const EMBED: &str = "EMBED";
    pub const INDEX: &str = "INDEX";
}

/// Event kinds as stored.
pub mod kind {
    pub const STARTED: &str = "STARTED";
    pub const PROGRESS: &str = "PROGRESS";
    pub const COMPLETED: &str = "COMPLETED";
    pub const FAILED: &str = "FAILED";
    pub const RETRY_SCHEDULED: &str = "RETRY_SCHEDULED";
    pub const CANCELLED: &str = "CANCELLED";
}

/// An event to record with a state change.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub stage: &'a str,
    pub kind: &'a str,
    pub percent: i32,
    pub message: String,
    pub details: serde_json::Value,
}

/// Applies `change` to the document and appends the event describing it. Call
/// inside a transaction; publish the returned event with [`announce`] after the
/// commit. None when the document no longer exists.
pub async fn transition(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    change: &StateChange,
    progress: Progress<'_>,
) -> diesel::QueryResult<Option<(Document, DocumentEvent)>> {
    let Some(updated) = document::update(conn, id, change).await? else {
        return Ok(None);
    };
    let event = document_event::append(
        conn,
        &NewDocumentEvent {
            document_id: id,
            owner_id: updated.owner_id,
            attempt: updated.attempt,
            stage: progress.stage.to_owned(),
            kind: progress.kind.to_owned(),
            percent: progress.percent.clamp(0, 100),
            message: progress.message,
            details: progress.details,
            state: updated.state.clone(),
        },
    )
    .await?;
    Ok(Some((updated, event)))
}

/// Publishes a committed event on Redis. Losing a notice loses nothing (the
/// event is in Postgres); it only delays watchers that are not polling.
pub async fn announce(cache: &Cache, event: &DocumentEvent) {
    let notice = serde_json::json!({
        "document_id": event.document_id,
        "owner_id": event.owner_id,
        "event_id": event.id,
    });
    let mut connection = cache.connection();
    let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg(cache.key(EVENTS_CHANNEL))
        .arg(notice.to_string())
        .query_async(&mut connection)
        .await;
    if let Err(error) = published {
        tracing::warn!(%error, document = %event.document_id, "document event notice not published");
    }
}

//! What the api-server and the workers both do to documents: move them through
//! their [`lifecycle`] (each state change with the event that reports it, in
//! one transaction), announce the event on Redis after the commit so watchers
//! see it at once (Postgres stays the record), and name their blobs.
//!
//! # Layout
//!
//! - [`state`]: the typed words (state, stage, event kind); a leaf.
//! - [`lifecycle`]: the transition table and the guarded writes.

pub mod lifecycle;
pub mod state;

use uuid::Uuid;

use folio_core::cache::Cache;

use crate::models::document_event::DocumentEvent;

/// The Redis channel that carries document event notices (after the prefix).
pub const EVENTS_CHANNEL: &str = "document-events";

/// The blob key of a document's parse result for `attempt`.
pub fn parsed_key(document_id: Uuid, attempt: i32) -> String {
    format!("parsed/{document_id}/{attempt}.json")
}

/// The blob key of the searchable PDF made for `attempt` of a document some
/// of whose pages were read by OCR: the scanned pages with an invisible text
/// layer over them, the other pages as they were.
pub fn searchable_key(document_id: Uuid, attempt: i32) -> String {
    format!("parsed/{document_id}/{attempt}.searchable.pdf")
}

/// The blob key of a document's saved vectors for `attempt` (see
/// `pipeline::embed::saved`); removed once the attempt is indexed.
pub fn embedded_key(document_id: Uuid, attempt: i32) -> String {
    format!("embedded/{document_id}/{attempt}.bin")
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

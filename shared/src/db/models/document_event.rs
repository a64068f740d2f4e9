//! `document_events`: the progress log of every document.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::document_events;

/// An event as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = document_events)]
pub struct DocumentEvent {
    pub id: i64,
    pub document_id: Uuid,
    pub owner_id: Uuid,
    pub attempt: i32,
    pub stage: String,
    pub kind: String,
    pub percent: i32,
    pub message: String,
    pub details: serde_json::Value,
    pub state: String,
    pub created_at: DateTime<Utc>,
}

/// An event to append.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = document_events)]
pub struct NewDocumentEvent {
    pub document_id: Uuid,
    pub owner_id: Uuid,
    pub attempt: i32,
    pub stage: String,
    pub kind: String,
    pub percent: i32,
    pub message: String,
    pub details: serde_json::Value,
    pub state: String,
}

/// Appends an event, returning it with its id.
pub async fn append(conn: &mut AsyncPgConnection, event: &NewDocumentEvent) -> QueryResult<DocumentEvent> {
    diesel::insert_into(document_events::table)
        .values(event)
        .returning(DocumentEvent::as_returning())
        .get_result(conn)
        .await
}

/// A document's events after `after_id`, oldest first.
pub async fn list(conn: &mut AsyncPgConnection, document_id: Uuid, after_id: i64, limit: i64) -> QueryResult<Vec<DocumentEvent>> {
    document_events::table
        .filter(document_events::document_id.eq(document_id))
        .filter(document_events::id.gt(after_id))
        .order(document_events::id.asc())
        .limit(limit)
        .select(DocumentEvent::as_select())
        .load(conn)
        .await
}

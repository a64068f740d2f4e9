//! `document_events`: the progress log of every document.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::share::Reach;
use crate::{
    documents::state::{EventKind, Stage, State},
    schema::{document_events, documents},
};

/// An event as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = document_events)]
pub struct DocumentEvent {
    pub id: i64,
    pub document_id: Uuid,
    pub owner_id: Uuid,
    pub attempt: i32,
    pub stage: Stage,
    pub kind: EventKind,
    pub percent: i32,
    pub message: String,
    pub details: serde_json::Value,
    pub state: State,
    pub created_at: DateTime<Utc>,
    /// The trace of the call or job that wrote it.
    pub trace_id: Option<String>,
}

/// An event to append.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = document_events)]
pub struct NewDocumentEvent {
    pub document_id: Uuid,
    pub owner_id: Uuid,
    pub attempt: i32,
    pub stage: Stage,
    pub kind: EventKind,
    pub percent: i32,
    pub message: String,
    pub details: serde_json::Value,
    pub state: State,
    pub trace_id: Option<String>,
}

/// The advisory lock between event appends and readers of the whole log
/// ("folio" and 1): appends hold it shared, [`settled`] takes it exclusively.
const APPEND_LOCK: i64 = 0x666f_6c69_6f00_0001;

/// Appends an event, returning it with its id.
///
/// A bigserial id is drawn at insert, but transactions commit in any order,
/// so id n may become visible after id n + 1. Within one document that cannot
/// happen: every append follows an update of its document's row (see
/// `documents::lifecycle`), whose lock is held to the commit. Across
/// documents, a reader of the whole log reads only up to [`settled`]. For that
/// the append holds the append lock shared from before its id is drawn to its
/// end: appends never wait for each other, and their commits share WAL
/// flushes. Make the append the last statement of its transaction, so a
/// reader waiting in [`settled`] waits for the commit alone.
pub async fn append(conn: &mut AsyncPgConnection, event: &NewDocumentEvent) -> QueryResult<DocumentEvent> {
    diesel::sql_query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind::<diesel::sql_types::BigInt, _>(APPEND_LOCK)
        .execute(conn)
        .await?;
    diesel::insert_into(document_events::table)
        .values(event)
        .returning(DocumentEvent::as_returning())
        .get_result(conn)
        .await
}

/// The settled horizon: an id h such that every event with an id up to h has
/// committed or rolled back, so a reader that has read the log up to h in id
/// order will never see a lower id appear. One call of the SQL function
/// `folio_settled_event_id`: it reads the last id drawn, then takes the append
/// lock exclusively for an instant, which waits for the appends in flight
/// (every id up to h was drawn under a shared hold that lasts to its
/// transaction's end). Appends that start meanwhile wait behind it for about
/// one commit. Called inside a transaction, the lock lasts to its end.
pub async fn settled(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Drawn {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        last: i64,
    }
    let drawn: Drawn = diesel::sql_query("SELECT folio_settled_event_id($1) AS last")
        .bind::<diesel::sql_types::BigInt, _>(APPEND_LOCK)
        .get_result(conn)
        .await?;
    Ok(drawn.last)
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

/// The latest of a document's events whose details have `key` equal to
/// `value` (such as retention's `"retention": "original"`).
pub async fn latest_with(conn: &mut AsyncPgConnection, document_id: Uuid, key: &str, value: &str) -> QueryResult<Option<DocumentEvent>> {
    use diesel::{dsl::sql, sql_types::Bool};
    document_events::table
        .filter(document_events::document_id.eq(document_id))
        .filter(
            sql::<Bool>("details ->> ")
                .bind::<diesel::sql_types::Text, _>(key)
                .sql(" = ")
                .bind::<diesel::sql_types::Text, _>(value),
        )
        .order(document_events::id.desc())
        .select(DocumentEvent::as_select())
        .first(conn)
        .await
        .optional()
}

/// An event with what the watch filters need of its document.
#[derive(Debug, Clone, Queryable)]
pub struct WatchedEvent {
    pub event: DocumentEvent,
    pub labels: Vec<Option<String>>,
    pub filename: String,
    pub document_created_at: DateTime<Utc>,
}

/// Whose events [`list_watched`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Document(Uuid),
    Owner(Uuid),
    /// The documents an account reads: its own and those shared with it.
    Reader(Uuid),
    Everyone,
}

/// Events in `scope` after `after_id` and up to `up_to` (a [`settled`]
/// horizon), oldest first, with their documents' labels, filename and
/// creation time.
pub async fn list_watched(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    after_id: i64,
    up_to: i64,
    limit: i64,
) -> QueryResult<Vec<WatchedEvent>> {
    let mut query = document_events::table
        .inner_join(documents::table)
        .filter(document_events::id.gt(after_id))
        .filter(document_events::id.le(up_to))
        .order(document_events::id.asc())
        .limit(limit)
        .select((
            DocumentEvent::as_select(),
            documents::labels,
            documents::filename,
            documents::created_at,
        ))
        .into_boxed();
    query = match scope {
        Scope::Document(id) => query.filter(document_events::document_id.eq(id)),
        Scope::Owner(id) => query.filter(document_events::owner_id.eq(id)),
        Scope::Reader(id) => query.filter(Reach::Readable(id).condition()),
        Scope::Everyone => query,
    };
    query.load(conn).await
}

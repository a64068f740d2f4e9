//! `audit_events`: who did what, when, from where, with what outcome.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::audit_events;

/// An event to record (serialisable: a row the database cannot take in time
/// is spilled to disk and imported later).
#[derive(Debug, Clone, Default, Insertable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent {
    /// When the call was made (not when the row is written).
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_email: String,
    pub rpc: String,
    pub target: String,
    pub outcome: String,
    pub event: String,
    pub latency_us: i64,
    pub peer: String,
}

/// A recorded event.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_email: String,
    pub rpc: String,
    pub target: String,
    pub outcome: String,
    pub event: String,
    pub latency_us: i64,
    pub peer: String,
}

/// Inserts a batch of events.
pub async fn insert_many(conn: &mut AsyncPgConnection, events: &[NewAuditEvent]) -> QueryResult<usize> {
    diesel::insert_into(audit_events::table).values(events).execute(conn).await
}

/// Filters of [`list`].
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub rpc: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Lists events newest first, `limit` at a time, before the event id `before`.
pub async fn list(conn: &mut AsyncPgConnection, filter: &AuditFilter, limit: i64, before: Option<i64>) -> QueryResult<Vec<AuditEvent>> {
    let mut query = audit_events::table.select(AuditEvent::as_select()).into_boxed();
    if let Some(actor) = filter.actor_id {
        query = query.filter(audit_events::actor_id.eq(actor));
    }
    if let Some(rpc) = &filter.rpc {
        query = query.filter(audit_events::rpc.eq(rpc.clone()));
    }
    if let Some(outcome) = &filter.outcome {
        query = query.filter(audit_events::outcome.eq(outcome.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_events::at.lt(until));
    }
    if let Some(before) = before {
        query = query.filter(audit_events::id.lt(before));
    }
    query.order(audit_events::id.desc()).limit(limit).load(conn).await
}

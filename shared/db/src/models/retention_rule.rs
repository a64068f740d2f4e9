//! `retention_rules`: per-label overrides of how long documents keep their
//! originals and themselves, and the queries that find what is due.
//!
//! How long a document keeps something (its original, or itself): where any
//! of its labels has a rule for it, the longest such rule (0, for ever, is
//! the longest); else the setting (0: for ever). Counted from its upload.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, upsert::excluded};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{documents::state::State, schema::retention_rules};

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = retention_rules)]
pub struct RetentionRule {
    pub label: String,
    /// Days documents with the label keep their original; None follows the
    /// setting; 0 keeps it for ever.
    pub original_days: Option<i32>,
    /// Days documents with the label are kept; as above.
    pub document_days: Option<i32>,
    pub updated_at: DateTime<Utc>,
    /// The admin who set it; None once that user is deleted.
    pub updated_by: Option<Uuid>,
}

/// Every rule, by label.
pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<RetentionRule>> {
    retention_rules::table
        .select(RetentionRule::as_select())
        .order(retention_rules::label)
        .load(conn)
        .await
}

/// Stores the rule for `label`, replacing what was there.
pub async fn set(
    conn: &mut AsyncPgConnection,
    label: &str,
    original_days: Option<i32>,
    document_days: Option<i32>,
    by: Uuid,
) -> QueryResult<RetentionRule> {
    diesel::insert_into(retention_rules::table)
        .values((
            retention_rules::label.eq(label),
            retention_rules::original_days.eq(original_days),
            retention_rules::document_days.eq(document_days),
            retention_rules::updated_by.eq(by),
        ))
        .on_conflict(retention_rules::label)
        .do_update()
        .set((
            retention_rules::original_days.eq(excluded(retention_rules::original_days)),
            retention_rules::document_days.eq(excluded(retention_rules::document_days)),
            retention_rules::updated_by.eq(excluded(retention_rules::updated_by)),
            retention_rules::updated_at.eq(diesel::dsl::now),
        ))
        .returning(RetentionRule::as_returning())
        .get_result(conn)
        .await
}

/// Removes the rule for `label`; whether there was one.
pub async fn remove(conn: &mut AsyncPgConnection, label: &str) -> QueryResult<bool> {
    Ok(diesel::delete(retention_rules::table.find(label)).execute(conn).await? > 0)
}

/// What a sweep deletes: a document's original, or the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Original,
    Document,
}

impl Kept {
    /// The rule's column for it.
    fn column(self) -> &'static str {
        match self {
            Kept::Original => "original_days",
            Kept::Document => "document_days",
        }
    }
}

/// A document past its retention.
#[derive(Debug, Clone, QueryableByName)]
pub struct Due {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    /// Where its original is (empty if deleted).
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub blob_key: String,
    /// The days it was to be kept.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub days: i32,
}

/// Locks (for the rest of the transaction) and returns up to `limit`
/// documents, oldest first, done with processing (READY,
/// FAILED or CANCELLED) and uploaded longer ago than they keep `what` as of
/// `now`; `setting` is the days the setting gives (0: for ever), `rules` the
/// rules in force. Originals already deleted are not due again.
pub async fn due(
    conn: &mut AsyncPgConnection,
    what: Kept,
    setting: i32,
    rules: &[RetentionRule],
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Due>> {
    use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz};
    // The shortest period anything is kept for bounds the upload time, so the
    // scan walks `documents_created_idx` over old documents only.
    let periods = rules.iter().filter_map(|rule| match what {
        Kept::Original => rule.original_days,
        Kept::Document => rule.document_days,
    });
    let Some(shortest) = periods.chain([setting]).filter(|days| *days > 0).min() else {
        return Ok(Vec::new());
    };
    let column = what.column();
    let original = if what == Kept::Original { "AND d.blob_key <> ''" } else { "" };
    diesel::sql_query(format!(
        "SELECT d.id, d.blob_key, COALESCE(o.days, $1) AS days FROM documents d \
         LEFT JOIN LATERAL ( \
             SELECT CASE WHEN bool_or(r.{column} = 0) THEN 0 ELSE max(r.{column}) END AS days \
             FROM retention_rules r WHERE r.label = ANY (d.labels) AND r.{column} IS NOT NULL \
         ) o ON true \
         WHERE d.state = ANY ($2) {original} \
           AND COALESCE(o.days, $1) > 0 \
           AND d.created_at < $3 - make_interval(days => $5) \
           AND d.created_at < $3 - make_interval(days => COALESCE(o.days, $1)) \
         ORDER BY d.created_at LIMIT $4 FOR UPDATE OF d SKIP LOCKED"
    ))
    .bind::<Integer, _>(setting)
    .bind::<Array<Text>, _>(DONE.iter().map(|s| s.as_str()).collect::<Vec<_>>())
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .bind::<Integer, _>(shortest)
    .load(conn)
    .await
}

/// The states a document may be swept in: processing is over.
pub const DONE: &[State] = &[State::Ready, State::Failed, State::Cancelled];

/// The sweeper's advisory lock: one sweeper at a time ("retain" in ASCII).
const SWEEP_LOCK: i64 = 0x7265_7461_696e;

/// Takes the sweeper's advisory lock for this session if no other session
/// holds it; whether it did. Release it with [`end_sweep`].
pub async fn try_lead_sweep(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    let taken: Taken = diesel::sql_query(format!("SELECT pg_try_advisory_lock({SWEEP_LOCK}) AS taken"))
        .get_result(conn)
        .await?;
    Ok(taken.taken)
}

/// Releases the sweeper's advisory lock taken by this session.
pub async fn end_sweep(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query(format!("SELECT pg_advisory_unlock({SWEEP_LOCK})"))
        .execute(conn)
        .await?;
    Ok(())
}

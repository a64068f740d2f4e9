//! `documents`: uploaded documents and their current processing state.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::share::Reach;
use crate::{
    documents::state::{Stage, State},
    schema::documents,
};

/// A document as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = documents)]
pub struct Document {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub filename: String,
    pub title: String,
    pub content_type: String,
    pub format: String,
    pub labels: Vec<Option<String>>,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
    /// Where the original bytes are in the blob store; empty once retention
    /// deleted them.
    pub blob_key: String,
    pub idempotency_key: Option<String>,
    pub state: State,
    pub stage: Option<Stage>,
    pub attempt: i32,
    pub try_number: i32,
    pub max_tries: i32,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub will_retry: bool,
    pub cancel_requested: bool,
    pub pages: Option<i32>,
    pub characters: Option<i64>,
    pub chunk_count: Option<i32>,
    pub stage_ms: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The delivery whose try holds the document while it is PROCESSING.
    pub try_token: Option<Uuid>,
    /// The worker the document is leased to while it is PROCESSING.
    pub lease_worker: Option<Uuid>,
    /// When that lease runs out unless the worker's heartbeat renews it.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl Document {
    /// Whether its original bytes are kept.
    pub fn has_original(&self) -> bool {
        !self.blob_key.is_empty()
    }
}

/// Inserts `document`; returns false when the owner already has the same bytes
/// or the same idempotency key (the caller then returns the existing one).
pub async fn insert(conn: &mut AsyncPgConnection, document: &Document) -> QueryResult<bool> {
    let inserted = diesel::insert_into(documents::table)
        .values(document)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Looks a document up by id.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Document>> {
    documents::table.find(id).select(Document::as_select()).first(conn).await.optional()
}

/// The owner's document with these bytes or this idempotency key.
pub async fn find_existing(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    sha256: &[u8],
    idempotency_key: Option<&str>,
) -> QueryResult<Option<Document>> {
    if let Some(key) = idempotency_key {
        let by_key = documents::table
            .filter(documents::owner_id.eq(owner))
            .filter(documents::idempotency_key.eq(key))
            .select(Document::as_select())
            .first(conn)
            .await
            .optional()?;
        if by_key.is_some() {
            return Ok(by_key);
        }
    }
    documents::table
        .filter(documents::owner_id.eq(owner))
        .filter(documents::sha256.eq(sha256))
        .select(Document::as_select())
        .first(conn)
        .await
        .optional()
}

/// Which of `ids` exist within `reach`.
pub async fn existing(conn: &mut AsyncPgConnection, ids: &[Uuid], reach: Reach) -> QueryResult<Vec<Uuid>> {
    documents::table
        .filter(documents::id.eq_any(ids))
        .filter(reach.condition())
        .select(documents::id)
        .load(conn)
        .await
}

/// Whether any document within `reach` carries `label`.
pub async fn label_used(conn: &mut AsyncPgConnection, label: &str, reach: Reach) -> QueryResult<bool> {
    let query = documents::table
        .filter(documents::labels.contains(vec![Some(label.to_owned())]))
        .filter(reach.condition());
    diesel::select(diesel::dsl::exists(query.select(documents::id)))
        .get_result(conn)
        .await
}

/// Changes to a document's processing state; `None` leaves a field as it is.
/// Only the lifecycle (`documents::lifecycle`) makes them.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = documents)]
pub struct StateChange {
    pub state: Option<State>,
    pub stage: Option<Option<Stage>>,
    pub title: Option<String>,
    /// Only `original_deleted` sets it (to empty).
    pub blob_key: Option<String>,
    pub attempt: Option<i32>,
    pub try_number: Option<i32>,
    pub max_tries: Option<i32>,
    pub next_retry_at: Option<Option<DateTime<Utc>>>,
    pub error_code: Option<Option<String>>,
    pub error_message: Option<Option<String>>,
    pub will_retry: Option<bool>,
    pub cancel_requested: Option<bool>,
    pub pages: Option<Option<i32>>,
    pub characters: Option<Option<i64>>,
    pub chunk_count: Option<Option<i32>>,
    pub stage_ms: Option<serde_json::Value>,
    pub completed_at: Option<Option<DateTime<Utc>>>,
    pub try_token: Option<Option<Uuid>>,
    pub lease_worker: Option<Option<Uuid>>,
    pub lease_expires_at: Option<Option<DateTime<Utc>>>,
    pub chunking: Option<Option<String>>,
}

/// What a guarded update expects of the row: the compare of a compare-and-set.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The row's state is one of these.
    pub states: Vec<State>,
    /// The row is on this attempt.
    pub attempt: Option<i32>,
    /// The row's try number is at most this.
    pub try_at_most: Option<i32>,
    /// A PROCESSING row is held by this try (other states pass without it).
    pub held_by: Option<Uuid>,
    /// A row that is not PROCESSING has not yet reached this try number.
    pub unstarted_before: Option<i32>,
    /// The row's cancel flag is this.
    pub cancel_requested: Option<bool>,
    /// The row's lease has run out (its expiry is past, by the database's
    /// clock).
    pub lease_expired: bool,
    /// The row's original bytes are kept.
    pub original_kept: bool,
}

/// Applies `change` if the row is as `expected`, in one statement (the row's
/// lock is taken by the UPDATE and the conditions rechecked after any wait).
/// Returns the updated row, or None when the row is missing or not as
/// expected.
pub async fn update_if(conn: &mut AsyncPgConnection, id: Uuid, expected: &Expected, change: &StateChange) -> QueryResult<Option<Document>> {
    let mut query = diesel::update(documents::table)
        .filter(documents::id.eq(id))
        .filter(documents::state.eq_any(expected.states.clone()))
        .into_boxed();
    if let Some(attempt) = expected.attempt {
        query = query.filter(documents::attempt.eq(attempt));
    }
    if let Some(most) = expected.try_at_most {
        query = query.filter(documents::try_number.le(most));
    }
    if let Some(token) = expected.held_by {
        query = query.filter(documents::state.ne(State::Processing).or(documents::try_token.eq(token)));
    }
    if let Some(number) = expected.unstarted_before {
        query = query.filter(documents::state.eq(State::Processing).or(documents::try_number.lt(number)));
    }
    if let Some(flag) = expected.cancel_requested {
        query = query.filter(documents::cancel_requested.eq(flag));
    }
    if expected.lease_expired {
        query = query.filter(documents::lease_expires_at.lt(diesel::dsl::now));
    }
    if expected.original_kept {
        query = query.filter(documents::blob_key.ne(""));
    }
    query
        .set((change, documents::updated_at.eq(diesel::dsl::now)))
        .returning(Document::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Pushes the expiry of every lease `worker` holds to `ttl` from now (the
/// database's clock); returns how many it renewed.
pub async fn renew_leases(conn: &mut AsyncPgConnection, worker: Uuid, ttl: std::time::Duration) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE documents SET lease_expires_at = now() + make_interval(secs => $2) \
         WHERE lease_worker = $1 AND state = 'PROCESSING'",
    )
    .bind::<diesel::sql_types::Uuid, _>(worker)
    .bind::<diesel::sql_types::Double, _>(ttl.as_secs_f64())
    .execute(conn)
    .await
}

/// Up to `limit` documents whose lease has run out, longest expired first.
pub async fn expired_leases(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<Uuid>> {
    documents::table
        .filter(documents::state.eq(State::Processing))
        .filter(documents::lease_expires_at.lt(diesel::dsl::now))
        .order(documents::lease_expires_at)
        .limit(limit)
        .select(documents::id)
        .load(conn)
        .await
}

/// Since when a waiting document has waited for a worker: a QUEUED one since
/// it was queued (its last write), a RETRY_WAIT one since its retry was due.
const WAITING_SINCE: &str = "(CASE WHEN documents.state = 'QUEUED' THEN documents.updated_at \
     WHEN documents.state = 'RETRY_WAIT' THEN documents.next_retry_at END)";

/// Up to `limit` documents that have waited for a worker longer than `bound`
/// and are due a notice of it: none since they began waiting, or the last
/// one at less than half their wait (so a document is noted after 1, 2, 4,
/// 8... bounds, not at every look). Longest waiting first.
pub async fn waiting_due(conn: &mut AsyncPgConnection, bound: std::time::Duration, limit: i64) -> QueryResult<Vec<Document>> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Double};
    let due = sql::<Bool>(&format!("{WAITING_SINCE} < now() - make_interval(secs => "))
        .bind::<Double, _>(bound.as_secs_f64())
        .sql(&format!(
            ") AND NOT EXISTS (SELECT 1 FROM document_events e WHERE e.document_id = documents.id \
             AND e.created_at > {WAITING_SINCE} AND now() - {WAITING_SINCE} < 2 * (e.created_at - {WAITING_SINCE}))"
        ));
    documents::table
        .filter(documents::state.eq_any([State::Queued, State::RetryWait]))
        .filter(due)
        .order(sql::<diesel::sql_types::Timestamptz>(WAITING_SINCE))
        .limit(limit)
        .select(Document::as_select())
        .load(conn)
        .await
}

/// How many documents have waited for a worker since before `since`.
pub async fn waiting_before(conn: &mut AsyncPgConnection, since: DateTime<Utc>) -> QueryResult<i64> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Timestamptz};
    documents::table
        .filter(documents::state.eq_any([State::Queued, State::RetryWait]))
        .filter(sql::<Bool>(&format!("{WAITING_SINCE} < ")).bind::<Timestamptz, _>(since))
        .count()
        .get_result(conn)
        .await
}

/// Locks the row of a document that is still in `state` at version
/// `updated_at`, changing nothing; returns it, or None if it moved on.
pub async fn touch_if_unchanged(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    state: State,
    updated_at: DateTime<Utc>,
) -> QueryResult<Option<Document>> {
    documents::table
        .find(id)
        .filter(documents::state.eq(state))
        .filter(documents::updated_at.eq(updated_at))
        .for_update()
        .select(Document::as_select())
        .first(conn)
        .await
        .optional()
}

/// Deletes a document (its chunks and events go with it); returns it.
pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Document>> {
    diesel::delete(documents::table.find(id))
        .returning(Document::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Filters of [`list`].
#[derive(Debug, Default, Clone)]
pub struct DocumentFilter {
    /// Whose: the caller's own, shared with the caller, both, or everyone's.
    pub reach: Reach,
    pub state: Option<State>,
    pub label: Option<String>,
    pub filename_contains: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

impl DocumentFilter {
    /// Whether an event leaving a document in `state` passes the filter (the
    /// watch streams' version of [`list`]'s conditions; whether the document
    /// is shared with the caller the hub decided in SQL before handing the
    /// event over, see `share::readers`).
    pub fn admits(&self, owner: Uuid, state: State, labels: &[Option<String>], filename: &str, created_at: DateTime<Utc>) -> bool {
        self.reach.admits_owner(owner)
            && self.state.is_none_or(|s| s == state)
            && self.label.as_deref().is_none_or(|l| labels.iter().flatten().any(|x| x == l))
            && self
                .filename_contains
                .as_deref()
                .is_none_or(|f| filename.to_lowercase().contains(&f.to_lowercase()))
            && self.created_after.is_none_or(|t| created_at >= t)
            && self.created_before.is_none_or(|t| created_at < t)
    }
}

/// The orders [`list`] supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    CreatedDesc,
    CreatedAsc,
    FilenameAsc,
}

/// Where a page starts: after this (sort key, id).
#[derive(Debug, Clone)]
pub enum Cursor {
    Created(DateTime<Utc>, Uuid),
    Filename(String, Uuid),
}

/// Lists documents.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &DocumentFilter,
    order: Order,
    after: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<Document>> {
    let mut query = documents::table
        .select(Document::as_select())
        .filter(filter.reach.condition())
        .into_boxed();
    if let Some(state) = &filter.state {
        query = query.filter(documents::state.eq(*state));
    }
    if let Some(label) = &filter.label {
        query = query.filter(documents::labels.contains(vec![Some(label.clone())]));
    }
    if let Some(text) = &filter.filename_contains {
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        query = query.filter(documents::filename.ilike(format!("%{escaped}%")));
    }
    if let Some(after) = filter.created_after {
        query = query.filter(documents::created_at.ge(after));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(documents::created_at.lt(before));
    }
    query = match (order, after) {
        (Order::CreatedDesc, Some(Cursor::Created(at, id))) => query.filter(
            documents::created_at
                .lt(at)
                .or(documents::created_at.eq(at).and(documents::id.lt(id))),
        ),
        (Order::CreatedAsc, Some(Cursor::Created(at, id))) => query.filter(
            documents::created_at
                .gt(at)
                .or(documents::created_at.eq(at).and(documents::id.gt(id))),
        ),
        (Order::FilenameAsc, Some(Cursor::Filename(name, id))) => query.filter(
            documents::filename
                .gt(name.clone())
                .or(documents::filename.eq(name).and(documents::id.gt(id))),
        ),
        _ => query,
    };
    query = match order {
        Order::CreatedDesc => query.order((documents::created_at.desc(), documents::id.desc())),
        Order::CreatedAsc => query.order((documents::created_at.asc(), documents::id.asc())),
        Order::FilenameAsc => query.order((documents::filename.asc(), documents::id.asc())),
    };
    query.limit(limit).load(conn).await
}

/// Documents, bytes and chunks in one state.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct StateCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub state: State,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub documents: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub bytes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub chunks: i64,
}

/// Percentiles of one stage's duration.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct StageTiming {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub stage: Stage,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub p50: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub p95: f64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub samples: i64,
}

/// Counts by state, of one owner's documents or everyone's.
pub async fn counts_by_state(conn: &mut AsyncPgConnection, owner: Option<Uuid>) -> QueryResult<Vec<StateCount>> {
    diesel::sql_query(
        "SELECT state, count(*)::int8 AS documents, coalesce(sum(size_bytes), 0)::int8 AS bytes, \
         coalesce(sum(chunk_count), 0)::int8 AS chunks \
         FROM documents WHERE ($1::uuid IS NULL OR owner_id = $1) GROUP BY state ORDER BY state",
    )
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(owner)
    .load(conn)
    .await
}

/// p50 and p95 of each stage's recorded duration.
pub async fn stage_timings(conn: &mut AsyncPgConnection, owner: Option<Uuid>) -> QueryResult<Vec<StageTiming>> {
    diesel::sql_query(
        "SELECT s.key AS stage, \
         percentile_cont(0.5) WITHIN GROUP (ORDER BY s.value::float8) AS p50, \
         percentile_cont(0.95) WITHIN GROUP (ORDER BY s.value::float8) AS p95, \
         count(*)::int8 AS samples \
         FROM documents d, jsonb_each_text(d.stage_ms) s \
         WHERE ($1::uuid IS NULL OR d.owner_id = $1) GROUP BY s.key ORDER BY s.key",
    )
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(owner)
    .load(conn)
    .await
}

/// What an owner's documents take: how many, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct Usage {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub documents: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub bytes: i64,
}

/// What `owner`'s documents take now.
pub async fn usage(conn: &mut AsyncPgConnection, owner: Uuid) -> QueryResult<Usage> {
    diesel::sql_query("SELECT count(*)::int8 AS documents, coalesce(sum(size_bytes), 0)::int8 AS bytes FROM documents WHERE owner_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(owner)
        .get_result(conn)
        .await
}

/// Uploads and failures on one UTC day.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct DayCount {
    /// YYYY-MM-DD.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub date: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub uploads: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub failures: i64,
}

/// Documents uploaded and documents ended FAILED on each of the last `days`
/// UTC days, oldest first, today last; days without any have zeros.
pub async fn daily(conn: &mut AsyncPgConnection, days: i32) -> QueryResult<Vec<DayCount>> {
    diesel::sql_query(
        "WITH days AS (\
             SELECT generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - ($1 - 1) * interval '1 day', \
                                    date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') AS day), \
         since AS (SELECT min(day) AT TIME ZONE 'UTC' AS at FROM days), \
         up AS (SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AS day, count(*) AS n \
                FROM documents, since WHERE created_at >= since.at GROUP BY 1), \
         failed AS (SELECT date_trunc('day', completed_at AT TIME ZONE 'UTC') AS day, count(*) AS n \
                    FROM documents, since WHERE state = 'FAILED' AND completed_at >= since.at GROUP BY 1) \
         SELECT to_char(days.day, 'YYYY-MM-DD') AS date, coalesce(up.n, 0)::int8 AS uploads, \
                coalesce(failed.n, 0)::int8 AS failures \
         FROM days LEFT JOIN up USING (day) LEFT JOIN failed USING (day) ORDER BY days.day",
    )
    .bind::<diesel::sql_types::Integer, _>(days)
    .load(conn)
    .await
}

/// FAILED documents with one error code.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct CodeCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub code: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub documents: i64,
}

/// FAILED documents by error code, most first.
pub async fn failures_by_code(conn: &mut AsyncPgConnection) -> QueryResult<Vec<CodeCount>> {
    diesel::sql_query(
        "SELECT coalesce(error_code, '') AS code, count(*)::int8 AS documents FROM documents \
         WHERE state = 'FAILED' GROUP BY 1 ORDER BY documents DESC, code",
    )
    .load(conn)
    .await
}

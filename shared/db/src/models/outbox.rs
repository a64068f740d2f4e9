//! `outbox`: jobs committed with the change that needs them, waiting for the
//! relay to publish them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use folio_core::queue::EncodedJob;

use crate::schema::outbox;

/// A row the relay has claimed.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub job_id: Uuid,
    pub kind: String,
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub publish_attempts: i32,
    /// The try the job is published as (its attempt header).
    pub try_number: i32,
}

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct NewOutboxRow<'a> {
    job_id: Uuid,
    kind: &'a str,
    payload: &'a [u8],
    try_number: i32,
}

/// Adds `job` to the outbox, to run as its first try. Call it inside the
/// transaction that makes the change the job is for, so both commit or
/// neither does.
pub async fn enqueue(conn: &mut AsyncPgConnection, job: &EncodedJob) -> QueryResult<()> {
    enqueue_try(conn, job, 1).await
}

/// [`enqueue`], to run as try `try_number` (a document taken back from a lost
/// worker goes on counting its tries).
pub async fn enqueue_try(conn: &mut AsyncPgConnection, job: &EncodedJob, try_number: i32) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values(NewOutboxRow {
            job_id: job.job_id,
            kind: job.kind,
            payload: &job.payload,
            try_number,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks up to `limit` unsent rows, oldest first, skipping rows another relay
/// holds. Must run inside a transaction; the locks last until it ends.
pub async fn claim_unsent(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::sent_at.is_null())
        .order(outbox::id)
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(OutboxRow::as_select())
        .load(conn)
        .await
}

/// Marks rows as published (after the broker confirmed them).
pub async fn mark_sent(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<usize> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::sent_at.eq(diesel::dsl::now),
            outbox::publish_attempts.eq(outbox::publish_attempts + 1),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .await
}

/// Records a failed publish of rows that stay unsent.
pub async fn record_failure(conn: &mut AsyncPgConnection, ids: &[i64], error: &str) -> QueryResult<usize> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::publish_attempts.eq(outbox::publish_attempts + 1),
            outbox::last_error.eq(error),
        ))
        .execute(conn)
        .await
}

/// How many rows wait to be published, and when the oldest of them was
/// written (none when no row waits).
pub async fn unsent_summary(conn: &mut AsyncPgConnection) -> QueryResult<(i64, Option<DateTime<Utc>>)> {
    outbox::table
        .filter(outbox::sent_at.is_null())
        .select((diesel::dsl::count_star(), diesel::dsl::min(outbox::created_at)))
        .get_result(conn)
        .await
}

/// How many rows wait to be published.
pub async fn count_unsent(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table.filter(outbox::sent_at.is_null()).count().get_result(conn).await
}

//! `workers`: every worker process that has registered, with its heartbeat.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::workers;

/// A worker as it last reported itself.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workers)]
pub struct Worker {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub current_job: Option<String>,
    pub jobs_in_flight: i32,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Registers a worker (or re-registers one with the same id).
pub async fn register(conn: &mut AsyncPgConnection, worker: &Worker) -> QueryResult<()> {
    diesel::insert_into(workers::table)
        .values(worker)
        .on_conflict(workers::id)
        .do_update()
        .set((
            workers::last_seen_at.eq(worker.last_seen_at),
            workers::stopped_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a heartbeat with the job the worker is on.
pub async fn heartbeat(conn: &mut AsyncPgConnection, id: Uuid, current_job: Option<&str>, jobs_in_flight: i32) -> QueryResult<usize> {
    diesel::update(workers::table.find(id))
        .set((
            workers::last_seen_at.eq(diesel::dsl::now),
            workers::current_job.eq(current_job),
            workers::jobs_in_flight.eq(jobs_in_flight),
        ))
        .execute(conn)
        .await
}

/// How many workers have beaten within `within`, and the jobs they said they
/// were running.
pub async fn alive(conn: &mut AsyncPgConnection, within: std::time::Duration) -> QueryResult<(i64, i64)> {
    #[derive(QueryableByName)]
    struct Alive {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        workers: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        jobs: i64,
    }
    let alive: Alive = diesel::sql_query(
        "SELECT count(*) AS workers, coalesce(sum(jobs_in_flight), 0)::bigint AS jobs FROM workers \
         WHERE stopped_at IS NULL AND last_seen_at > now() - make_interval(secs => $1)",
    )
    .bind::<diesel::sql_types::Double, _>(within.as_secs_f64())
    .get_result(conn)
    .await?;
    Ok((alive.workers, alive.jobs))
}

/// Marks a worker as stopped cleanly.
pub async fn mark_stopped(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::update(workers::table.find(id))
        .set((
            workers::stopped_at.eq(diesel::dsl::now),
            workers::last_seen_at.eq(diesel::dsl::now),
            workers::current_job.eq(None::<String>),
            workers::jobs_in_flight.eq(0),
        ))
        .execute(conn)
        .await
}

/// Where a page of [`list`] starts: after this (last_seen_at, id).
pub type Cursor = (DateTime<Utc>, Uuid);

/// Lists workers, most recent heartbeat first, `limit` at a time, after `after`.
pub async fn list(conn: &mut AsyncPgConnection, limit: i64, after: Option<Cursor>, include_stopped: bool) -> QueryResult<Vec<Worker>> {
    let mut query = workers::table.select(Worker::as_select()).into_boxed();
    if !include_stopped {
        query = query.filter(workers::stopped_at.is_null());
    }
    if let Some((seen, id)) = after {
        query = query.filter(
            workers::last_seen_at
                .lt(seen)
                .or(workers::last_seen_at.eq(seen).and(workers::id.gt(id))),
        );
    }
    query
        .order((workers::last_seen_at.desc(), workers::id.asc()))
        .limit(limit)
        .load(conn)
        .await
}

/// Workers seen within `within` that have not stopped.
pub async fn count_alive(conn: &mut AsyncPgConnection, within: std::time::Duration) -> QueryResult<i64> {
    let since = Utc::now() - chrono::Duration::from_std(within).unwrap_or_default();
    workers::table
        .filter(workers::stopped_at.is_null())
        .filter(workers::last_seen_at.ge(since))
        .count()
        .get_result(conn)
        .await
}

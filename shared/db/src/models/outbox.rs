//! `outbox`: jobs committed with the change that needs them, waiting for the
//! relay to publish them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use folio_core::queue::EncodedJob;

use crate::schema::outbox;

/// A row the relay has claimed.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
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
    /// Whose work it is; None for folio's own jobs (pings), which the relay
    /// sends at once, outside the fair schedule.
    pub owner_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    /// [`Priority`] as stored.
    pub priority: i16,
}

/// Order within one owner's jobs: interactive before bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// An upload a person waits for (the default).
    #[default]
    Interactive,
    /// Imports (`priority: BULK` in the upload's metadata) and re-embedding.
    Bulk,
}

impl Priority {
    fn stored(self) -> i16 {
        match self {
            Priority::Interactive => 0,
            Priority::Bulk => 1,
        }
    }

    fn from_stored(value: i16) -> Self {
        if value == 0 { Priority::Interactive } else { Priority::Bulk }
    }
}

/// Whose job a row is, for the fair schedule.
#[derive(Debug, Clone, Copy)]
pub struct Owned {
    pub owner_id: Uuid,
    pub document_id: Uuid,
    /// None: the document's last job's priority (interactive if it has none).
    pub priority: Option<Priority>,
}

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct NewOutboxRow<'a> {
    job_id: Uuid,
    kind: &'a str,
    payload: &'a [u8],
    try_number: i32,
    owner_id: Option<Uuid>,
    document_id: Option<Uuid>,
    priority: i16,
}

/// Adds folio's own `job` (no owner's: the relay sends it at once) to the
/// outbox. Call it inside the transaction that makes the change the job is
/// for, so both commit or neither does.
pub async fn enqueue(conn: &mut AsyncPgConnection, job: &EncodedJob) -> QueryResult<()> {
    insert(conn, job, 1, None).await
}

/// Adds an owner's `job` for a document, to run as try `try_number` (a
/// document taken back from a lost worker goes on counting its tries); the
/// relay releases it in its owner's fair turn. Inside the change's
/// transaction, as [`enqueue`].
pub async fn enqueue_owned(conn: &mut AsyncPgConnection, job: &EncodedJob, owned: Owned, try_number: i32) -> QueryResult<()> {
    let priority = match owned.priority {
        Some(priority) => priority,
        None => last_priority(conn, owned.document_id).await?,
    };
    insert(conn, job, try_number, Some((owned, priority))).await
}

async fn insert(conn: &mut AsyncPgConnection, job: &EncodedJob, try_number: i32, owned: Option<(Owned, Priority)>) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values(NewOutboxRow {
            job_id: job.job_id,
            kind: job.kind,
            payload: &job.payload,
            try_number,
            owner_id: owned.map(|(owned, _)| owned.owner_id),
            document_id: owned.map(|(owned, _)| owned.document_id),
            priority: owned.map_or(0, |(_, priority)| priority.stored()),
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// The priority of the document's latest job; interactive if it has none.
async fn last_priority(conn: &mut AsyncPgConnection, document: Uuid) -> QueryResult<Priority> {
    let stored: Option<i16> = outbox::table
        .filter(outbox::document_id.eq(document))
        .order(outbox::id.desc())
        .select(outbox::priority)
        .first(conn)
        .await
        .optional()?;
    Ok(stored.map_or(Priority::Interactive, Priority::from_stored))
}

/// Locks up to `limit` unsent rows of folio's own (no owner), oldest first,
/// skipping rows another relay holds. Must run inside a transaction; the
/// locks last until it ends.
pub async fn claim_unowned(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::owner_id.is_null())
        .order(outbox::id)
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(OutboxRow::as_select())
        .load(conn)
        .await
}

/// Whether any owned row waits to be released.
pub async fn owned_waiting(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        outbox::table
            .filter(outbox::sent_at.is_null())
            .filter(outbox::owner_id.is_not_null()),
    ))
    .get_result(conn)
    .await
}

/// Every owner's next `per_owner` waiting rows, each owner's in its order
/// (priority, then age). Owners are found by a skip scan of the waiting
/// index, so a backlog of one owner costs one index probe, not a scan.
pub async fn owned_candidates(conn: &mut AsyncPgConnection, per_owner: i64) -> QueryResult<Vec<OutboxRow>> {
    diesel::sql_query(format!(
        "{WAITING_OWNERS} \
         SELECT c.id, c.job_id, c.kind, c.payload, c.created_at, c.publish_attempts, c.try_number, \
                c.owner_id, c.document_id, c.priority \
         FROM owners CROSS JOIN LATERAL ( \
             SELECT * FROM outbox o WHERE o.sent_at IS NULL AND o.owner_id = owners.owner_id \
             ORDER BY o.priority, o.id LIMIT $1) c \
         WHERE owners.owner_id IS NOT NULL \
         ORDER BY c.owner_id, c.priority, c.id"
    ))
    .bind::<diesel::sql_types::BigInt, _>(per_owner)
    .load(conn)
    .await
}

/// The owners with rows waiting, found by a recursive skip scan over the
/// waiting index (a CTE called `owners`; its last row is NULL).
const WAITING_OWNERS: &str = "WITH RECURSIVE owners AS ( \
      (SELECT owner_id FROM outbox WHERE sent_at IS NULL AND owner_id IS NOT NULL ORDER BY owner_id LIMIT 1) \
    UNION ALL \
      SELECT (SELECT o.owner_id FROM outbox o WHERE o.sent_at IS NULL AND o.owner_id > owners.owner_id \
              ORDER BY o.owner_id LIMIT 1) \
      FROM owners WHERE owners.owner_id IS NOT NULL)";

/// The owners with jobs waiting to be released.
pub async fn waiting_owners(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Owner {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        owner_id: Uuid,
    }
    let owners: Vec<Owner> = diesel::sql_query(format!("{WAITING_OWNERS} SELECT owner_id FROM owners WHERE owner_id IS NOT NULL"))
        .load(conn)
        .await?;
    Ok(owners.into_iter().map(|o| o.owner_id).collect())
}

/// Locks the rows of `ids` that are still unsent, for the transaction.
pub async fn lock_unsent(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<i64>> {
    outbox::table
        .filter(outbox::id.eq_any(ids))
        .filter(outbox::sent_at.is_null())
        .for_update()
        .select(outbox::id)
        .load(conn)
        .await
}

/// Where a document's waiting job stands in the fair schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Its owner's documents before it: those whose jobs are released
    /// before it (ahead in priority or age), and those released already and
    /// not started yet.
    pub ahead: i64,
    /// Owners with jobs waiting, its own included.
    pub owners: i64,
}

/// How many of its owner's documents are ahead of `document`'s unreleased
/// job (see [`Position::ahead`]); None when it has none waiting.
pub async fn ahead_of(conn: &mut AsyncPgConnection, document: Uuid) -> QueryResult<Option<i64>> {
    #[derive(QueryableByName)]
    struct Ahead {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        ahead: i64,
    }
    let found: Option<Ahead> = diesel::sql_query(
        "SELECT (SELECT count(*) FROM outbox o \
                 WHERE o.sent_at IS NULL AND o.owner_id = me.owner_id AND (o.priority, o.id) < (me.priority, me.id)) \
              + (SELECT count(*) FROM documents d \
                 WHERE d.owner_id = me.owner_id AND d.state = 'QUEUED' AND NOT EXISTS ( \
                     SELECT 1 FROM outbox w WHERE w.document_id = d.id AND w.sent_at IS NULL)) AS ahead \
         FROM outbox me WHERE me.document_id = $1 AND me.sent_at IS NULL AND me.owner_id IS NOT NULL \
         ORDER BY me.id DESC LIMIT 1",
    )
    .bind::<diesel::sql_types::Uuid, _>(document)
    .get_result(conn)
    .await
    .optional()?;
    Ok(found.map(|found| found.ahead))
}

/// How many of `owner`'s jobs wait to be released, counted up to `cap`
/// (the count stops there, so a large backlog costs at most `cap` index
/// entries).
pub async fn owner_waiting(conn: &mut AsyncPgConnection, owner: Uuid, cap: i64) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        waiting: i64,
    }
    let counted: Waiting = diesel::sql_query(
        "SELECT count(*) AS waiting FROM (SELECT 1 FROM outbox \
         WHERE owner_id = $1 AND sent_at IS NULL LIMIT $2) AS w",
    )
    .bind::<diesel::sql_types::Uuid, _>(owner)
    .bind::<diesel::sql_types::BigInt, _>(cap)
    .get_result(conn)
    .await?;
    Ok(counted.waiting)
}

/// How many of `owner`'s jobs were released in the last `window_secs`
/// seconds (its drain rate).
pub async fn owner_released(conn: &mut AsyncPgConnection, owner: Uuid, window_secs: i64) -> QueryResult<i64> {
    let since = Utc::now() - chrono::Duration::seconds(window_secs);
    outbox::table
        .filter(outbox::owner_id.eq(owner))
        .filter(outbox::sent_at.gt(since))
        .count()
        .get_result(conn)
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

/// How many rows wait to be published, and since when the outbox has gone
/// without publishing while they wait: the oldest unsent row's writing, or
/// the last publish if later (none when no row waits). Owned rows wait for
/// their turns while others are published, so the age of the oldest alone
/// would say an import is a stuck outbox.
pub async fn unsent_summary(conn: &mut AsyncPgConnection) -> QueryResult<(i64, Option<DateTime<Utc>>)> {
    let (pending, oldest): (i64, Option<DateTime<Utc>>) = outbox::table
        .filter(outbox::sent_at.is_null())
        .select((diesel::dsl::count_star(), diesel::dsl::min(outbox::created_at)))
        .get_result(conn)
        .await?;
    let Some(oldest) = oldest else {
        return Ok((pending, None));
    };
    let last_sent: Option<DateTime<Utc>> = outbox::table
        .filter(outbox::sent_at.is_not_null())
        .select(diesel::dsl::max(outbox::sent_at))
        .get_result(conn)
        .await?;
    Ok((pending, Some(last_sent.map_or(oldest, |sent| sent.max(oldest)))))
}

/// How many rows wait to be published.
pub async fn count_unsent(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table.filter(outbox::sent_at.is_null()).count().get_result(conn).await
}

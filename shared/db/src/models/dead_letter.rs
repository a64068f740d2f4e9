//! `dead_letters`: jobs the broker dead-lettered, as the workers that settled
//! them recorded them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{dead_letters, documents};

/// A dead letter as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = dead_letters)]
pub struct DeadLetter {
    pub id: i64,
    /// None when the message was not a job at all.
    pub job_id: Option<Uuid>,
    /// The job's kind (`process_document`, `ping`, ...), or `undecodable`.
    pub kind: String,
    pub document_id: Option<Uuid>,
    /// The attempt header of the last delivery (1-based).
    pub attempt: i32,
    /// RabbitMQ's reason: `delivery_limit`, `rejected`, ...
    pub reason: String,
    /// The job message as queued.
    pub payload: Vec<u8>,
    pub dead_at: DateTime<Utc>,
    /// When an operator replayed it (its document queued again).
    pub replayed_at: Option<DateTime<Utc>>,
    /// When an operator purged it (set aside for good).
    pub purged_at: Option<DateTime<Utc>>,
    /// Who replayed or purged it.
    pub settled_by: Option<Uuid>,
}

impl DeadLetter {
    /// Neither replayed nor purged.
    pub fn pending(&self) -> bool {
        self.replayed_at.is_none() && self.purged_at.is_none()
    }
}

/// A dead letter with what its document says now (nothing when the
/// document is gone or the job had none).
#[derive(Debug, Clone, Queryable)]
pub struct Listed {
    pub letter: DeadLetter,
    pub owner_id: Option<Uuid>,
    pub filename: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Which dead letters a list or a replay or purge takes; every part that is
/// set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// These letters only.
    pub ids: Option<Vec<i64>>,
    pub kind: Option<String>,
    pub reason: Option<String>,
    /// The document's owner.
    pub owner_id: Option<Uuid>,
    /// The document's error code.
    pub error_code: Option<String>,
    pub dead_after: Option<DateTime<Utc>>,
    pub dead_before: Option<DateTime<Utc>>,
    /// Only letters neither replayed nor purged.
    pub pending_only: bool,
}

type Joined = diesel::dsl::LeftJoinOn<
    dead_letters::table,
    documents::table,
    diesel::dsl::Eq<diesel::dsl::Nullable<documents::id>, dead_letters::document_id>,
>;

/// The letters that pass `filter`, joined with their documents, unordered.
fn matching(filter: &Filter) -> diesel::dsl::IntoBoxed<'static, Joined, diesel::pg::Pg> {
    let mut query = dead_letters::table
        .left_join(documents::table.on(documents::id.nullable().eq(dead_letters::document_id)))
        .into_boxed();
    if let Some(ids) = &filter.ids {
        query = query.filter(dead_letters::id.eq_any(ids.clone()));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(dead_letters::kind.eq(kind.clone()));
    }
    if let Some(reason) = &filter.reason {
        query = query.filter(dead_letters::reason.eq(reason.clone()));
    }
    if let Some(owner) = filter.owner_id {
        query = query.filter(documents::owner_id.eq(owner));
    }
    if let Some(code) = &filter.error_code {
        query = query.filter(documents::error_code.eq(code.clone()));
    }
    if let Some(after) = filter.dead_after {
        query = query.filter(dead_letters::dead_at.ge(after));
    }
    if let Some(before) = filter.dead_before {
        query = query.filter(dead_letters::dead_at.lt(before));
    }
    if filter.pending_only {
        query = query.filter(dead_letters::replayed_at.is_null().and(dead_letters::purged_at.is_null()));
    }
    query
}

/// Lists letters newest first, `limit` at a time, before the letter id
/// `before`.
pub async fn list(conn: &mut AsyncPgConnection, filter: &Filter, limit: i64, before: Option<i64>) -> QueryResult<Vec<Listed>> {
    let mut query = matching(filter);
    if let Some(before) = before {
        query = query.filter(dead_letters::id.lt(before));
    }
    query
        .select((
            DeadLetter::as_select(),
            documents::owner_id.nullable(),
            documents::filename.nullable(),
            documents::error_code.nullable(),
            documents::error_message.nullable(),
        ))
        .order(dead_letters::id.desc())
        .limit(limit)
        .load::<(DeadLetter, Option<Uuid>, Option<String>, Option<String>, Option<String>)>(conn)
        .await
        .map(|rows| {
            rows.into_iter()
                .map(|(letter, owner_id, filename, error_code, error_message)| Listed {
                    letter,
                    owner_id,
                    filename,
                    error_code,
                    error_message,
                })
                .collect()
        })
}

/// The ids of up to `limit` pending letters that pass `filter`, oldest first.
pub async fn pending_ids(conn: &mut AsyncPgConnection, filter: &Filter, limit: i64) -> QueryResult<Vec<i64>> {
    let filter = Filter {
        pending_only: true,
        ..filter.clone()
    };
    matching(&filter)
        .select(dead_letters::id)
        .order(dead_letters::id)
        .limit(limit)
        .load(conn)
        .await
}

/// Locks letter `id` for settling, if it is still pending.
pub async fn claim_pending(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<DeadLetter>> {
    dead_letters::table
        .filter(dead_letters::id.eq(id))
        .filter(dead_letters::replayed_at.is_null().and(dead_letters::purged_at.is_null()))
        .select(DeadLetter::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// How an operator settled a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Replayed,
    Purged,
}

/// Marks letter `id` replayed or purged by `by`.
pub async fn settle(conn: &mut AsyncPgConnection, id: i64, how: Settled, by: Uuid) -> QueryResult<usize> {
    let now = diesel::dsl::now.into_sql::<diesel::sql_types::Timestamptz>().nullable();
    let update = diesel::update(dead_letters::table.filter(dead_letters::id.eq(id)));
    match how {
        Settled::Replayed => {
            update
                .set((dead_letters::replayed_at.eq(now), dead_letters::settled_by.eq(by)))
                .execute(conn)
                .await
        }
        Settled::Purged => {
            update
                .set((dead_letters::purged_at.eq(now), dead_letters::settled_by.eq(by)))
                .execute(conn)
                .await
        }
    }
}

/// A dead letter to record.
#[derive(Debug, Insertable)]
#[diesel(table_name = dead_letters)]
pub struct NewDeadLetter<'a> {
    pub job_id: Option<Uuid>,
    pub kind: &'a str,
    pub document_id: Option<Uuid>,
    pub attempt: i32,
    pub reason: &'a str,
    pub payload: &'a [u8],
}

/// Records a dead letter; one delivered again is not recorded twice.
pub async fn record(conn: &mut AsyncPgConnection, letter: &NewDeadLetter<'_>) -> QueryResult<usize> {
    diesel::insert_into(dead_letters::table)
        .values(letter)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
}

/// Every dead letter, oldest first (tests and tooling).
pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<DeadLetter>> {
    dead_letters::table
        .order(dead_letters::id)
        .select(DeadLetter::as_select())
        .load(conn)
        .await
}

//! `dead_letters`: jobs the broker dead-lettered, as the workers that settled
//! them recorded them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::dead_letters;

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

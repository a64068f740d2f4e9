//! `pings`: round trips through outbox, queue and worker.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::pings;

/// A ping as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pings)]
pub struct Ping {
    pub id: Uuid,
    pub requested_at: DateTime<Utc>,
    pub received_at: Option<DateTime<Utc>>,
    pub worker_id: Option<Uuid>,
    /// How many times a worker applied the ping's effect: 1 once received,
    /// whatever the number of deliveries.
    pub receipts: i32,
}

/// Stores a new ping, returning it.
pub async fn create(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Ping> {
    diesel::insert_into(pings::table)
        .values(pings::id.eq(id))
        .returning(Ping::as_returning())
        .get_result(conn)
        .await
}

/// Records that `worker_id` received the ping. The first receipt's time and
/// worker stay; `receipts` counts every application.
pub async fn record_receipt(conn: &mut AsyncPgConnection, id: Uuid, worker_id: Uuid) -> QueryResult<usize> {
    diesel::update(pings::table.find(id))
        .set((
            pings::received_at.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>(
                "coalesce(received_at, now())",
            )),
            pings::worker_id.eq(
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>>("coalesce(worker_id, ")
                    .bind::<diesel::sql_types::Uuid, _>(worker_id)
                    .sql(")"),
            ),
            pings::receipts.eq(pings::receipts + 1),
        ))
        .execute(conn)
        .await
}

/// Looks a ping up by id.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Ping>> {
    pings::table.find(id).select(Ping::as_select()).first(conn).await.optional()
}

//! `services`: external services folio depends on and their last check.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::services;

/// A registered service with its last check.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = services)]
pub struct Service {
    pub name: String,
    /// `http` or `grpc`.
    pub kind: String,
    /// The URL checked.
    pub target: String,
    /// Registered by the api-server from its settings (a model server).
    pub automatic: bool,
    pub created_at: DateTime<Utc>,
    /// None until first checked.
    pub up: Option<bool>,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    /// When `up` last flipped (or was first set).
    pub changed_at: Option<DateTime<Utc>>,
}

/// A service to register.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = services)]
pub struct NewService<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub target: &'a str,
    pub automatic: bool,
}

/// Registers `service`, or changes the kind and target of the one of that
/// name (its last check is then forgotten).
pub async fn register(conn: &mut AsyncPgConnection, service: &NewService<'_>) -> QueryResult<Service> {
    diesel::insert_into(services::table)
        .values(service)
        .on_conflict(services::name)
        .do_update()
        .set((
            services::kind.eq(service.kind),
            services::target.eq(service.target),
            services::automatic.eq(service.automatic),
            services::up.eq(None::<bool>),
            services::latency_ms.eq(None::<i32>),
            services::error.eq(None::<String>),
            services::checked_at.eq(None::<DateTime<Utc>>),
            services::changed_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(Service::as_returning())
        .get_result(conn)
        .await
}

/// Registers the service unless one of that name with the same kind and
/// target is already there (so a restart keeps its history).
pub async fn ensure(conn: &mut AsyncPgConnection, service: &NewService<'_>) -> QueryResult<()> {
    let same = services::table
        .find(service.name)
        .filter(services::kind.eq(service.kind))
        .filter(services::target.eq(service.target))
        .count()
        .get_result::<i64>(conn)
        .await?;
    if same == 0 {
        register(conn, service).await?;
    }
    Ok(())
}

/// Removes the service called `name`; false when there was none.
pub async fn unregister(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<bool> {
    Ok(diesel::delete(services::table.find(name)).execute(conn).await? > 0)
}

/// The service called `name`, if registered.
pub async fn find(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<Option<Service>> {
    services::table.find(name).select(Service::as_select()).first(conn).await.optional()
}

/// Every service, by name.
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Service>> {
    services::table.order(services::name).select(Service::as_select()).load(conn).await
}

/// Records a check of `name`: up or not, how long it took, the error.
/// `changed_at` moves only when up/down differs from the last check.
pub async fn record_check(conn: &mut AsyncPgConnection, name: &str, up: bool, latency_ms: i32, error: Option<&str>) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE services SET changed_at = CASE WHEN up IS DISTINCT FROM $2 THEN now() ELSE changed_at END, \
         up = $2, latency_ms = $3, error = $4, checked_at = now() WHERE name = $1",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .bind::<diesel::sql_types::Bool, _>(up)
    .bind::<diesel::sql_types::Integer, _>(latency_ms)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(error)
    .execute(conn)
    .await
}

//! `settings`: the values an admin set at run time, overriding the environment.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::settings;

/// A setting as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = settings)]
pub struct Setting {
    pub name: String,
    pub value: i64,
    pub updated_at: DateTime<Utc>,
    /// The admin who set it; None once that user is deleted.
    pub updated_by: Option<Uuid>,
}

/// Every stored setting.
pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Setting>> {
    settings::table.select(Setting::as_select()).order(settings::name).load(conn).await
}

/// Stores `value` for `name`, replacing what was there.
pub async fn set(conn: &mut AsyncPgConnection, name: &str, value: i64, by: Uuid) -> QueryResult<Setting> {
    diesel::insert_into(settings::table)
        .values((settings::name.eq(name), settings::value.eq(value), settings::updated_by.eq(by)))
        .on_conflict(settings::name)
        .do_update()
        .set((
            settings::value.eq(excluded(settings::value)),
            settings::updated_by.eq(excluded(settings::updated_by)),
            settings::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Setting::as_returning())
        .get_result(conn)
        .await
}

/// Removes the stored value of `name`, so the environment's applies again.
pub async fn reset(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<usize> {
    diesel::delete(settings::table.find(name)).execute(conn).await
}

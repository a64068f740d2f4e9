//! `embedding_index`: the one embedding model (and dimension) the index is for.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, upsert::excluded};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::embedding_index;

/// The recorded model.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = embedding_index)]
pub struct IndexModel {
    pub model: String,
    pub dimension: i32,
    pub updated_at: DateTime<Utc>,
}

/// The recorded model, if any document was ever indexed.
pub async fn get(conn: &mut AsyncPgConnection) -> QueryResult<Option<IndexModel>> {
    embedding_index::table.select(IndexModel::as_select()).first(conn).await.optional()
}

/// Records `model` unless one is recorded; returns the recorded one (locked
/// for the rest of the transaction, so a concurrent reindex waits).
pub async fn claim(conn: &mut AsyncPgConnection, model: &str, dimension: i32) -> QueryResult<IndexModel> {
    diesel::insert_into(embedding_index::table)
        .values((embedding_index::model.eq(model), embedding_index::dimension.eq(dimension)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    embedding_index::table.select(IndexModel::as_select()).for_share().first(conn).await
}

/// Records `model` as the index's, replacing any other.
pub async fn set(conn: &mut AsyncPgConnection, model: &str, dimension: i32) -> QueryResult<IndexModel> {
    diesel::insert_into(embedding_index::table)
        .values((embedding_index::model.eq(model), embedding_index::dimension.eq(dimension)))
        .on_conflict(embedding_index::singleton)
        .do_update()
        .set((
            embedding_index::model.eq(excluded(embedding_index::model)),
            embedding_index::dimension.eq(excluded(embedding_index::dimension)),
            embedding_index::updated_at.eq(diesel::dsl::now),
        ))
        .returning(IndexModel::as_returning())
        .get_result(conn)
        .await
}

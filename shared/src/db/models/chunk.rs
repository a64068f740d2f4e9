//! `chunks`: indexed pieces of documents with their embeddings. The embedding
//! column's SQL type is the one `diesel print-schema` generated for pgvector's
//! `vector`; [`Embedding`] maps it to `pgvector::Vector`.

use diesel::{
    deserialize::{self, FromSql},
    pg::{Pg, PgValue},
    prelude::*,
    serialize::{self, Output, ToSql},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::{chunks, sql_types};

/// A vector in the `embedding` column.
#[derive(Debug, Clone, PartialEq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = sql_types::Vector)]
pub struct Embedding(pub pgvector::Vector);

impl ToSql<sql_types::Vector, Pg> for Embedding {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <pgvector::Vector as ToSql<pgvector::sql_types::Vector, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql_types::Vector, Pg> for Embedding {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <pgvector::Vector as FromSql<pgvector::sql_types::Vector, Pg>>::from_sql(value).map(Embedding)
    }
}

/// A chunk to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = chunks)]
pub struct NewChunk {
    pub document_id: Uuid,
    pub ordinal: i32,
    pub text: String,
    pub section_path: Vec<Option<String>>,
    pub page_start: Option<i32>,
    pub page_end: Option<i32>,
    pub token_count: i32,
    pub embedding: Embedding,
}

/// A stored chunk, without its vector.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = chunks)]
pub struct Chunk {
    pub id: i64,
    pub document_id: Uuid,
    pub ordinal: i32,
    pub text: String,
    pub section_path: Vec<Option<String>>,
    pub page_start: Option<i32>,
    pub page_end: Option<i32>,
    pub token_count: i32,
}

/// Rows per INSERT statement (Postgres allows 65,535 bound parameters).
const INSERT_BATCH: usize = 1000;

/// Replaces every chunk of `document_id` with `new`. Run it in the transaction
/// that marks the document READY, so readers see the old set or the new one.
pub async fn replace(conn: &mut AsyncPgConnection, document_id: Uuid, new: &[NewChunk]) -> QueryResult<usize> {
    delete_for(conn, document_id).await?;
    let mut inserted = 0;
    for batch in new.chunks(INSERT_BATCH) {
        inserted += diesel::insert_into(chunks::table).values(batch).execute(conn).await?;
    }
    Ok(inserted)
}

/// Deletes every chunk of a document.
pub async fn delete_for(conn: &mut AsyncPgConnection, document_id: Uuid) -> QueryResult<usize> {
    diesel::delete(chunks::table.filter(chunks::document_id.eq(document_id)))
        .execute(conn)
        .await
}

/// A document's chunks in order, after `after_ordinal`.
pub async fn list(conn: &mut AsyncPgConnection, document_id: Uuid, after_ordinal: i32, limit: i64) -> QueryResult<Vec<Chunk>> {
    chunks::table
        .filter(chunks::document_id.eq(document_id))
        .filter(chunks::ordinal.gt(after_ordinal))
        .order(chunks::ordinal.asc())
        .limit(limit)
        .select(Chunk::as_select())
        .load(conn)
        .await
}

/// How many chunks a document has.
pub async fn count(conn: &mut AsyncPgConnection, document_id: Uuid) -> QueryResult<i64> {
    chunks::table
        .filter(chunks::document_id.eq(document_id))
        .count()
        .get_result(conn)
        .await
}

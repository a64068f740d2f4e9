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

use super::{segment, share::Reach};
use crate::{
    documents::state::State,
    schema::{chunks, documents, sql_types},
};

/// A vector in the `embedding` column.
#[derive(Debug, Clone, PartialEq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = sql_types::Vector)]
pub struct Embedding(pub pgvector::Vector);

impl Chunk {
    /// What embedders see: all headings, then text.
    pub fn with_headings(&self) -> String {
        let path: Vec<&str> = self.section_path.iter().flatten().map(String::as_str).collect();
        folio_parse::chunk::with_headings(&path, &self.text)
    }

    /// What rerankers see: the chunk's own heading, then text (the headings
    /// above it are shared with its sibling sections and blur them).
    pub fn with_own_heading(&self) -> String {
        let own: Vec<&str> = self
            .section_path
            .iter()
            .flatten()
            .map(String::as_str)
            .next_back()
            .into_iter()
            .collect();
        folio_parse::chunk::with_headings(&own, &self.text)
    }
}

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
    /// The model that made `embedding`.
    pub embedding_model: String,
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

/// READY documents whose chunks were made for another embedder: chunked
/// otherwise than `chunking` (see `folio_models::embed::chunking`), or with
/// chunks embedded by another model than `model`. What a reindex queues.
pub async fn documents_to_reindex(conn: &mut AsyncPgConnection, model: &str, chunking: &str) -> QueryResult<Vec<Uuid>> {
    let other_model = chunks::table
        .filter(chunks::document_id.eq(documents::id))
        .filter(chunks::embedding_model.ne(model));
    documents::table
        .filter(documents::state.eq(State::Ready))
        .filter(documents::chunking.is_distinct_from(chunking).or(diesel::dsl::exists(other_model)))
        .select(documents::id)
        .order(documents::id)
        .load(conn)
        .await
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

/// Which chunks a search may return: those of READY documents within
/// `reach` (an admin's: everyone's; anyone else's: their own and those shared
/// with them), narrowed to some documents and labels (empty: all).
#[derive(Debug, Clone, Default)]
pub struct SearchScope {
    pub reach: Reach,
    pub document_ids: Vec<Uuid>,
    pub labels: Vec<String>,
}

/// A candidate: a chunk and its score in one list.
#[derive(Debug, Clone, QueryableByName)]
pub struct Candidate {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub id: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub score: f64,
}

/// The scope's conditions on `c` (chunks) and `d` (documents), binds $2..$3,
/// and then its reach (see [`SearchScope::sql`]). Only READY documents are
/// searched (the unit test below ties the word to `State::Ready`).
const SCOPE_SQL: &str = "d.state = 'READY' \
     AND (cardinality($2::uuid[]) = 0 OR c.document_id = ANY($2)) \
     AND (cardinality($3::text[]) = 0 OR d.labels && $3::text[])";

impl SearchScope {
    /// The scope's conditions, in the candidate queries themselves: whose
    /// documents (the sharing rule included) is decided with the rest while
    /// the indexes are scanned, not after the candidates are cut.
    fn sql(&self) -> String {
        format!("{SCOPE_SQL} AND {}", self.reach.sql("d"))
    }
}

/// `hnsw.ef_search` scaled to the graphs when none is configured: one
/// candidate per this many chunks of the largest sealed segment, within the
/// bounds below. A graph's recall at a given `ef_search` falls as it grows:
/// at 10,000 `hash` chunks 100 gives recall@10 0.96 and 400 already walks
/// most of the graph (23 ms); at 100,000, 800 gives 0.97 in 10 ms
/// (BENCHMARKS.md, Search).
pub const SCALED_EF_SEARCH_PER: i64 = 125;
/// The least `hnsw.ef_search` when it is scaled to the graphs.
pub const SCALED_EF_SEARCH_MIN: i64 = 100;
/// The most `hnsw.ef_search` when it is scaled to the graphs.
pub const SCALED_EF_SEARCH_MAX: i64 = 800;

/// The `hnsw.ef_search` for graphs of at most `span` chunks.
pub fn scaled_ef_search(span: i64) -> u32 {
    ((span + SCALED_EF_SEARCH_PER - 1) / SCALED_EF_SEARCH_PER).clamp(SCALED_EF_SEARCH_MIN, SCALED_EF_SEARCH_MAX) as u32
}

/// The `limit` chunks nearest to `query` (cosine similarity as the score)
/// among those embedded by `model`: through each sealed segment's HNSW graph
/// (`ef_search` candidates per scan, or, if `None`, as many as the largest
/// graph calls for, see [`scaled_ef_search`]; and pgvector's iterative scan
/// so a narrow scope still fills the list), and by an exact scan of the open
/// segment. Run it in a transaction (the settings are local to it).
pub async fn nearest(
    conn: &mut AsyncPgConnection,
    query: &pgvector::Vector,
    model: &str,
    scope: &SearchScope,
    limit: i64,
    ef_search: Option<u32>,
) -> QueryResult<Vec<Candidate>> {
    let sealed = segment::sealed(conn).await?;
    let largest = sealed.iter().map(|s| s.hi - s.lo).max().unwrap_or(0);
    let ef_search = ef_search.unwrap_or_else(|| scaled_ef_search(largest));
    diesel::sql_query("SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        .bind::<diesel::sql_types::Text, _>(ef_search.to_string())
        .execute(conn)
        .await?;
    // One scan per segment, each ordered by its own graph (the open segment's
    // by sorting); relaxed order may return a few out of place: the outer
    // query sorts.
    let scope_sql = scope.sql();
    let scan = |range: &str, order: &str| {
        format!(
            "(SELECT c.id, c.embedding <=> $1 AS distance FROM chunks c JOIN documents d ON d.id = c.document_id \
             WHERE {scope_sql} AND c.embedding_model = $4 AND {range} ORDER BY {order} LIMIT $5)"
        )
    };
    let scans: Vec<String> = sealed
        .iter()
        .map(|s| scan(&s.condition("c"), "c.embedding <=> $1"))
        .chain([scan(&format!("c.id >= {}", segment::open_from(&sealed)), "distance")])
        .collect();
    diesel::sql_query(format!(
        "SELECT id, 1 - distance AS score FROM ({}) nearest ORDER BY distance LIMIT $5",
        scans.join(" UNION ALL ")
    ))
    .bind::<pgvector::sql_types::Vector, _>(query)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(&scope.document_ids)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&scope.labels)
    .bind::<diesel::sql_types::Text, _>(model)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await
}

/// The `limit` best full-text matches of `query` (web search syntax, English
/// configuration), scored by RUM's `rum_ts_score` (heading words weigh more
/// than body words; the score is the reciprocal of the `<=>` distance). Each
/// sealed segment's matches come ranked from its RUM index, which stops after
/// `limit` instead of ranking every match; the open segment's are found
/// through the GIN index over every chunk and ranked by the same function.
pub async fn matching(conn: &mut AsyncPgConnection, query: &str, scope: &SearchScope, limit: i64) -> QueryResult<Vec<Candidate>> {
    let sealed = segment::sealed(conn).await?;
    // The query is written out in each ORDER BY (not joined in from a
    // function scan) so the planner sees a constant it can hand to the index.
    let scope_sql = scope.sql();
    let scan = |range: &str, order: &str| {
        format!(
            "(SELECT c.id, c.tsv <=> websearch_to_tsquery('english', $1) AS distance \
             FROM chunks c JOIN documents d ON d.id = c.document_id \
             WHERE {range} AND c.tsv @@ websearch_to_tsquery('english', $1) AND {scope_sql} \
             ORDER BY {order} LIMIT $4)"
        )
    };
    let scans: Vec<String> = sealed
        .iter()
        .map(|s| scan(&s.condition("c"), "c.tsv <=> websearch_to_tsquery('english', $1)"))
        .chain([scan(&format!("c.id >= {}", segment::open_from(&sealed)), "distance")])
        .collect();
    diesel::sql_query(format!(
        "SELECT id, (1 / distance)::float8 AS score FROM ({}) matches ORDER BY distance, id LIMIT $4",
        scans.join(" UNION ALL ")
    ))
    .bind::<diesel::sql_types::Text, _>(query)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(&scope.document_ids)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&scope.labels)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await
}

/// Chunks by id with their documents' titles and filenames.
pub async fn with_documents(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<(Chunk, String, String)>> {
    chunks::table
        .inner_join(documents::table)
        .filter(chunks::id.eq_any(ids))
        .select((Chunk::as_select(), documents::title, documents::filename))
        .load(conn)
        .await
}

/// A document's chunks whose vectors were made by another model than
/// `model`, in reading order.
pub async fn stale(conn: &mut AsyncPgConnection, document_id: Uuid, model: &str) -> QueryResult<Vec<Chunk>> {
    chunks::table
        .filter(chunks::document_id.eq(document_id))
        .filter(chunks::embedding_model.ne(model))
        .order(chunks::ordinal.asc())
        .select(Chunk::as_select())
        .load(conn)
        .await
}

/// Replaces one chunk's vector.
pub async fn set_embedding(conn: &mut AsyncPgConnection, id: i64, embedding: Embedding, model: &str) -> QueryResult<usize> {
    diesel::update(chunks::table.find(id))
        .set((chunks::embedding.eq(embedding), chunks::embedding_model.eq(model)))
        .execute(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ef_search_follows_the_largest_graph_within_bounds() {
        assert_eq!(scaled_ef_search(0), 100);
        assert_eq!(scaled_ef_search(10_000), 100);
        assert_eq!(scaled_ef_search(50_000), 400);
        assert_eq!(scaled_ef_search(100_001), 800);
        assert_eq!(scaled_ef_search(5_000_000), 800);
    }

    #[test]
    fn search_scope_names_the_ready_state_as_stored() {
        assert!(SCOPE_SQL.starts_with(&format!("d.state = '{}' ", State::Ready)), "{SCOPE_SQL}");
    }
}

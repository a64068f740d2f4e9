//! `refresh_tokens`: hashed, single-use refresh tokens.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::refresh_tokens;

/// A refresh token as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    pub token_hash: Vec<u8>,
    pub session_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub access_jti: Uuid,
    pub access_expires_at: DateTime<Utc>,
}

/// Stores a new token.
pub async fn insert(conn: &mut AsyncPgConnection, token: &RefreshToken) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table).values(token).execute(conn).await?;
    Ok(())
}

/// Marks the token used if it was not, returning it. Of several concurrent
/// callers exactly one gets `Some`.
pub async fn take(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Option<RefreshToken>> {
    diesel::update(refresh_tokens::table.find(hash).filter(refresh_tokens::used_at.is_null()))
        .set(refresh_tokens::used_at.eq(diesel::dsl::now))
        .returning(RefreshToken::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Looks a token up whatever its state.
pub async fn find(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .find(hash)
        .select(RefreshToken::as_select())
        .first(conn)
        .await
        .optional()
}

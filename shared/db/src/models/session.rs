//! `sessions`: refresh-token families.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{refresh_tokens, sessions};

/// A session as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last took a token (its login, or a refresh).
    pub last_used_at: DateTime<Utc>,
    /// The client's address and user agent then.
    pub peer: String,
    pub user_agent: String,
}

/// Who is using a session: the client's address and user agent.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub peer: String,
    pub user_agent: String,
}

/// Starts a session for `user_id` that ends at `expires_at` at the latest.
pub async fn create(conn: &mut AsyncPgConnection, id: Uuid, user_id: Uuid, expires_at: DateTime<Utc>, client: &Client) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(id),
            sessions::user_id.eq(user_id),
            sessions::expires_at.eq(expires_at),
            sessions::peer.eq(&client.peer),
            sessions::user_agent.eq(&client.user_agent),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that session `id` took a token now, from `client`.
pub async fn used(conn: &mut AsyncPgConnection, id: Uuid, client: &Client) -> QueryResult<()> {
    diesel::update(sessions::table.find(id))
        .set((
            sessions::last_used_at.eq(diesel::dsl::now),
            sessions::peer.eq(&client.peer),
            sessions::user_agent.eq(&client.user_agent),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// `user_id`'s sessions neither revoked nor expired, last used first.
pub async fn list_live(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(diesel::dsl::now))
        .order((sessions::last_used_at.desc(), sessions::id.desc()))
        .limit(1000)
        .select(Session::as_select())
        .load(conn)
        .await
}

/// Looks a session up.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Session>> {
    sessions::table.find(id).select(Session::as_select()).first(conn).await.optional()
}

/// An access token issued in a revoked session that may still be live.
#[derive(Debug, Clone, Queryable)]
pub struct LiveAccess {
    pub jti: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Revokes the sessions `ids` (those not yet revoked) and returns the access
/// tokens issued in them that have not expired, so they can be denied.
pub async fn revoke(conn: &mut AsyncPgConnection, ids: &[Uuid], reason: &str) -> QueryResult<Vec<LiveAccess>> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq_any(ids))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((sessions::revoked_at.eq(diesel::dsl::now), sessions::revoked_reason.eq(reason)))
    .execute(conn)
    .await?;
    refresh_tokens::table
        .filter(refresh_tokens::session_id.eq_any(ids))
        .filter(refresh_tokens::access_expires_at.gt(diesel::dsl::now))
        .select((refresh_tokens::access_jti, refresh_tokens::access_expires_at))
        .load(conn)
        .await
}

/// The ids of a user's sessions that are not revoked.
pub async fn live_ids(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Vec<Uuid>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .select(sessions::id)
        .load(conn)
        .await
}

/// Sessions neither revoked nor expired.
pub async fn count_live(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(diesel::dsl::now))
        .count()
        .get_result(conn)
        .await
}

/// Whether `user_id` had any session besides `except`, and whether one of
/// them was last used from `peer`: what tells a sign-in from a new address.
pub async fn seen_before(conn: &mut AsyncPgConnection, user_id: Uuid, peer: &str, except: Uuid) -> QueryResult<(bool, bool)> {
    let peers: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::id.ne(except))
        .select(sessions::peer)
        .distinct()
        .limit(10_000)
        .load(conn)
        .await?;
    Ok((!peers.is_empty(), peers.iter().any(|seen| seen == peer)))
}

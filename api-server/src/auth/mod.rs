//! Who is calling and what they may do.
//!
//! - [`policy`] is the one table of each RPC's required access.
//! - [`middleware`] is the tower layer in front of every service: it verifies
//!   the bearer token, checks revocation and the caller's current role, applies
//!   rate limits, puts the [`Principal`] in the request's extensions and writes
//!   the audit row of the call.
//! - [`guard`] holds the Redis-backed parts: rate limits, login-failure limits
//!   and the access-token denylist.

pub mod guard;
pub mod middleware;
pub mod policy;

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods as _, OptionalExtension as _, QueryDsl as _, SelectableHelper as _};
use diesel_async::RunQueryDsl as _;
use folio_auth::Role;
use folio_db::{
    self as db,
    models::user::User,
    schema::{sessions, users},
};
use tonic::{Request, Status};
use uuid::Uuid;

/// The authenticated caller of an RPC.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub email: String,
    /// The user's role now (from the database, not the token), so a role change
    /// applies from the next call.
    pub role: Role,
    pub session_id: Uuid,
    pub jti: Uuid,
    pub token_expires_at: DateTime<Utc>,
}

/// The principal the middleware attached to `request`.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("a bearer token is required"))
}

/// The caller's address as text ("" when unknown).
pub fn peer<T>(request: &Request<T>) -> String {
    request.remote_addr().map(|addr| addr.ip().to_string()).unwrap_or_default()
}

/// The account behind a token, if it is active and its session is live.
pub async fn live_account(pool: &db::Pool, user_id: Uuid, session_id: Uuid) -> anyhow::Result<Option<User>> {
    let mut conn = pool.get().await?;
    let found: Option<(User, Option<DateTime<Utc>>)> = users::table
        .inner_join(sessions::table)
        .filter(users::id.eq(user_id))
        .filter(sessions::id.eq(session_id))
        .select((User::as_select(), sessions::revoked_at))
        .first(&mut conn)
        .await
        .optional()?;
    Ok(found.and_then(|(user, revoked)| (user.active && revoked.is_none()).then_some(user)))
}

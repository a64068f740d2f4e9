//! Who is calling and what they may do.
//!
//! - [`policy`] is the one table of each RPC's required access.
//! - [`middleware`] is the tower layer in front of every service: it verifies
//!   the bearer token, checks revocation and the caller's current role, applies
//!   rate limits, puts the [`Principal`] in the request's extensions and writes
//!   the audit row of the call.
//! - [`guard`] holds the Redis-backed parts: rate limits, login-failure limits
//!   and the access-token denylist.
//! - [`client`] finds the address a call comes from (behind trusted proxies,
//!   the one they report).

pub mod client;
pub mod guard;
pub mod middleware;
pub mod policy;

use chrono::{DateTime, Utc};
use folio_auth::Role;
use folio_db as db;
use folio_db::models::{
    share::Reach,
    user::{self, User},
};
use tonic::{Request, Status};
use uuid::Uuid;

use crate::error::ApiError;

/// The authenticated caller of an RPC.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub email: String,
    /// Whether the account proved it owns its email.
    pub email_verified: bool,
    /// The user's role now (from the database, not the token), so a role change
    /// applies from the next call.
    pub role: Role,
    pub session_id: Uuid,
    pub jti: Uuid,
    pub token_expires_at: DateTime<Utc>,
}

/// Which of the documents a caller may read a list or a search asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Whose {
    /// Everything the caller reads: an admin's, everyone's; anyone else's,
    /// their own and those shared with them.
    #[default]
    All,
    /// The caller's own.
    Mine,
    /// Those shared with the caller (by a share naming them or a group they
    /// are in), not their own.
    SharedWithMe,
}

impl Principal {
    /// Whose documents the caller owns the rights to, to change them and to
    /// count them: an admin everyone's (None), anyone else their own. The one
    /// place this rule is written; reading adds the documents shared with
    /// the caller ([`Principal::reach`]).
    pub fn owner_scope(&self) -> Option<Uuid> {
        (self.role != Role::Admin).then_some(self.user_id)
    }

    /// Whether the caller may change (and share) what `owner` owns.
    pub fn reaches(&self, owner: Uuid) -> bool {
        self.owner_scope().is_none_or(|own| own == owner)
    }

    /// The documents `whose` names among those the caller reads, as the
    /// condition every read path puts in its query (`share::Reach`).
    pub fn reach(&self, whose: Whose) -> Reach {
        match (whose, self.owner_scope()) {
            (Whose::All, None) => Reach::Everyone,
            (Whose::All, Some(own)) => Reach::Readable(own),
            (Whose::Mine, _) => Reach::Own(self.user_id),
            (Whose::SharedWithMe, _) => Reach::SharedWith(self.user_id),
        }
    }
}

/// The principal the middleware attached to `request`.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("a bearer token is required".into()).into())
}

/// The caller's address as text ("" when unknown): the one the middleware
/// found ([`client::ClientAddress`]), else the connection's.
pub fn peer<T>(request: &Request<T>) -> String {
    if let Some(client::ClientAddress(address)) = request.extensions().get() {
        return address.clone();
    }
    request.remote_addr().map(|addr| addr.ip().to_string()).unwrap_or_default()
}

/// The account behind a token, if it is active and its session is live.
pub async fn live_account(pool: &db::Pool, user_id: Uuid, session_id: Uuid) -> anyhow::Result<Option<User>> {
    let mut conn = pool.get().await?;
    Ok(user::live_in_session(&mut conn, user_id, session_id).await?)
}

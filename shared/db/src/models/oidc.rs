//! `oidc_logins` (sign-ins under way with an OpenID Connect provider) and
//! `user_identities` (which provider identity is which account).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{oidc_logins, user_identities};

/// A sign-in between StartOidcLogin and FinishOidcLogin.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_logins)]
pub struct PendingLogin {
    pub state_hash: Vec<u8>,
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Stores a sign-in under way, and clears the expired ones.
pub async fn begin(conn: &mut AsyncPgConnection, login: &PendingLogin) -> QueryResult<()> {
    diesel::delete(oidc_logins::table.filter(oidc_logins::expires_at.lt(diesel::dsl::now)))
        .execute(conn)
        .await?;
    diesel::insert_into(oidc_logins::table).values(login).execute(conn).await?;
    Ok(())
}

/// Ends the live sign-in of state `hash`, returning it; of two callers
/// exactly one gets it.
pub async fn take(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Option<PendingLogin>> {
    diesel::delete(oidc_logins::table.find(hash).filter(oidc_logins::expires_at.gt(diesel::dsl::now)))
        .returning(PendingLogin::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The account linked to `subject` at `provider`.
pub async fn linked_user(conn: &mut AsyncPgConnection, provider: &str, subject: &str) -> QueryResult<Option<Uuid>> {
    user_identities::table
        .find((provider, subject))
        .select(user_identities::user_id)
        .first(conn)
        .await
        .optional()
}

/// Links `subject` at `provider` to `user_id` (a second link of the same
/// identity changes nothing).
pub async fn link(conn: &mut AsyncPgConnection, provider: &str, subject: &str, user_id: Uuid) -> QueryResult<()> {
    diesel::insert_into(user_identities::table)
        .values((
            user_identities::provider.eq(provider),
            user_identities::subject.eq(subject),
            user_identities::user_id.eq(user_id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

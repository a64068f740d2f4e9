//! `totp_secrets`, `backup_codes` and `mfa_challenges`: second factors and
//! the logins waiting for one. `users.mfa_enabled` moves with them, in the
//! same transactions.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{backup_codes, mfa_challenges, totp_secrets, users};

/// A TOTP secret as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = totp_secrets)]
pub struct TotpSecret {
    pub user_id: Uuid,
    pub secret_sealed: String,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_step: i64,
}

/// `user_id`'s TOTP secret, confirmed or not.
pub async fn find_totp(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Option<TotpSecret>> {
    totp_secrets::table
        .find(user_id)
        .select(TotpSecret::as_select())
        .first(conn)
        .await
        .optional()
}

/// Starts (or restarts) `user_id`'s enrollment with `sealed`; false, and
/// nothing changed, when a confirmed secret is in place.
pub async fn begin_totp(conn: &mut AsyncPgConnection, user_id: Uuid, sealed: &str) -> QueryResult<bool> {
    // diesel's upsert builder has no WHERE on DO UPDATE; this one statement
    // is what keeps a confirmed secret from being replaced by a racing call.
    let written = diesel::sql_query(
        "INSERT INTO totp_secrets (user_id, secret_sealed) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = now(), last_step = 0 \
         WHERE totp_secrets.confirmed_at IS NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<diesel::sql_types::Text, _>(sealed)
    .execute(conn)
    .await?;
    Ok(written == 1)
}

/// Accepts a code of time step `step` for `user_id`: only if no code of that
/// step or a later one was accepted before, so of two uses of one code
/// exactly one gets true. `confirming` accepts it only for a secret being
/// enrolled, and confirms it (turning MFA on); otherwise only for a
/// confirmed one.
pub async fn accept_step(conn: &mut AsyncPgConnection, user_id: Uuid, step: i64, confirming: bool) -> QueryResult<bool> {
    let target = totp_secrets::table.find(user_id).filter(totp_secrets::last_step.lt(step));
    let accepted = if confirming {
        diesel::update(target.filter(totp_secrets::confirmed_at.is_null()))
            .set((totp_secrets::last_step.eq(step), totp_secrets::confirmed_at.eq(diesel::dsl::now)))
            .execute(conn)
            .await?
            == 1
    } else {
        diesel::update(target.filter(totp_secrets::confirmed_at.is_not_null()))
            .set(totp_secrets::last_step.eq(step))
            .execute(conn)
            .await?
            == 1
    };
    if accepted && confirming {
        set_enabled(conn, user_id, true).await?;
    }
    Ok(accepted)
}

/// Removes `user_id`'s TOTP secret and backup codes, turning MFA off;
/// whether there was a secret.
pub async fn remove(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<bool> {
    let removed = diesel::delete(totp_secrets::table.find(user_id)).execute(conn).await?;
    diesel::delete(backup_codes::table.filter(backup_codes::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    set_enabled(conn, user_id, false).await?;
    Ok(removed == 1)
}

async fn set_enabled(conn: &mut AsyncPgConnection, user_id: Uuid, enabled: bool) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((users::mfa_enabled.eq(enabled), users::updated_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces `user_id`'s backup codes with `hashes`.
pub async fn replace_backup_codes(conn: &mut AsyncPgConnection, user_id: Uuid, hashes: &[Vec<u8>]) -> QueryResult<()> {
    diesel::delete(backup_codes::table.filter(backup_codes::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    let rows: Vec<_> = hashes
        .iter()
        .map(|hash| (backup_codes::user_id.eq(user_id), backup_codes::code_hash.eq(hash)))
        .collect();
    diesel::insert_into(backup_codes::table).values(rows).execute(conn).await?;
    Ok(())
}

/// Uses `user_id`'s unused backup code `hash`; of two uses exactly one gets
/// true.
pub async fn take_backup_code(conn: &mut AsyncPgConnection, user_id: Uuid, hash: &[u8]) -> QueryResult<bool> {
    let taken = diesel::update(backup_codes::table.find((user_id, hash)).filter(backup_codes::used_at.is_null()))
        .set(backup_codes::used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(taken == 1)
}

/// How many of `user_id`'s backup codes are unused.
pub async fn backup_codes_left(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    backup_codes::table
        .filter(backup_codes::user_id.eq(user_id))
        .filter(backup_codes::used_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// A login waiting for its second factor.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mfa_challenges)]
pub struct Challenge {
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub attempts: i32,
}

/// Stores a new challenge, and clears every expired one.
pub async fn create_challenge(conn: &mut AsyncPgConnection, hash: &[u8], user_id: Uuid, expires_at: DateTime<Utc>) -> QueryResult<()> {
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(diesel::dsl::now)))
        .execute(conn)
        .await?;
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::token_hash.eq(hash),
            mfa_challenges::user_id.eq(user_id),
            mfa_challenges::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The live (unexpired) challenge `hash`.
pub async fn find_challenge(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Option<Challenge>> {
    mfa_challenges::table
        .find(hash)
        .filter(mfa_challenges::expires_at.gt(diesel::dsl::now))
        .select(Challenge::as_select())
        .first(conn)
        .await
        .optional()
}

/// Counts a wrong code against challenge `hash`, deleting it at `limit`
/// wrong codes; the count so far (None: the challenge is gone).
pub async fn challenge_failed(conn: &mut AsyncPgConnection, hash: &[u8], limit: i32) -> QueryResult<Option<i32>> {
    let attempts: Option<i32> = diesel::update(mfa_challenges::table.find(hash))
        .set(mfa_challenges::attempts.eq(mfa_challenges::attempts + 1))
        .returning(mfa_challenges::attempts)
        .get_result(conn)
        .await
        .optional()?;
    if attempts.is_some_and(|n| n >= limit) {
        diesel::delete(mfa_challenges::table.find(hash)).execute(conn).await?;
    }
    Ok(attempts)
}

/// Ends challenge `hash`; of two callers exactly one gets true.
pub async fn take_challenge(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<bool> {
    let taken = diesel::delete(
        mfa_challenges::table
            .find(hash)
            .filter(mfa_challenges::expires_at.gt(diesel::dsl::now)),
    )
    .execute(conn)
    .await?;
    Ok(taken == 1)
}

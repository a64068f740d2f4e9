//! `email_tokens` (the single-use tokens of verification and password-reset
//! emails, hashed) and `email_outbox` (emails still to send).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{email_outbox, email_tokens};

/// What an email token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
        }
    }
}

/// Stores a new token for `user_id`, replacing the unused ones of the same
/// purpose (only the latest email's link works).
pub async fn create_token(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    user_id: Uuid,
    purpose: Purpose,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::delete(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null()),
    )
    .execute(conn)
    .await?;
    diesel::insert_into(email_tokens::table)
        .values((
            email_tokens::token_hash.eq(hash),
            email_tokens::user_id.eq(user_id),
            email_tokens::purpose.eq(purpose.as_str()),
            email_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Uses the live token `hash` of `purpose`: its user, if it was unused and
/// unexpired. Of two uses exactly one gets it.
pub async fn take_token(conn: &mut AsyncPgConnection, hash: &[u8], purpose: Purpose) -> QueryResult<Option<Uuid>> {
    diesel::update(
        email_tokens::table
            .find(hash)
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::expires_at.gt(diesel::dsl::now)),
    )
    .set(email_tokens::used_at.eq(diesel::dsl::now))
    .returning(email_tokens::user_id)
    .get_result(conn)
    .await
    .optional()
}

/// When `user_id` was last sent a token of `purpose`.
pub async fn last_token_at(conn: &mut AsyncPgConnection, user_id: Uuid, purpose: Purpose) -> QueryResult<Option<DateTime<Utc>>> {
    email_tokens::table
        .filter(email_tokens::user_id.eq(user_id))
        .filter(email_tokens::purpose.eq(purpose.as_str()))
        .select(diesel::dsl::max(email_tokens::created_at))
        .first(conn)
        .await
}

/// An email waiting to be sent.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_outbox)]
pub struct Outgoing {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
}

/// Queues an email; run it in the transaction of what it announces.
pub async fn enqueue(conn: &mut AsyncPgConnection, recipient: &str, subject: &str, body: &str) -> QueryResult<()> {
    diesel::insert_into(email_outbox::table)
        .values((
            email_outbox::recipient.eq(recipient),
            email_outbox::subject.eq(subject),
            email_outbox::body.eq(body),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks up to `limit` due emails, oldest first, skipping those another
/// sender holds. Run it in the transaction that settles them.
pub async fn claim_due(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<Outgoing>> {
    email_outbox::table
        .filter(email_outbox::next_attempt_at.le(diesel::dsl::now))
        .order(email_outbox::id)
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(Outgoing::as_select())
        .load(conn)
        .await
}

/// Forgets a sent (or abandoned) email.
pub async fn remove(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<()> {
    diesel::delete(email_outbox::table.find(id)).execute(conn).await?;
    Ok(())
}

/// Records a failed attempt; the next one is due at `next_attempt_at`.
pub async fn failed(conn: &mut AsyncPgConnection, id: i64, next_attempt_at: DateTime<Utc>, error: &str) -> QueryResult<()> {
    diesel::update(email_outbox::table.find(id))
        .set((
            email_outbox::attempts.eq(email_outbox::attempts + 1),
            email_outbox::next_attempt_at.eq(next_attempt_at),
            email_outbox::last_error.eq(error),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Emails waiting, for the metrics and the tests.
pub async fn pending(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    email_outbox::table.count().get_result(conn).await
}

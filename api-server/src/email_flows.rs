//! The flows that go through a user's mailbox, in domain terms: email
//! verification, password reset and security alerts. Tokens are 256 random
//! bits, stored as SHA-256, single use (a conditional UPDATE takes them);
//! each token is written with the letter that carries it, in one
//! transaction, so no token exists that no email carries and no email
//! carries a token that was never stored.

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use folio_auth::{Email, password::Password, refresh};
use folio_db::models::{
    email::{self as tokens, Purpose},
    session, user,
};
use uuid::Uuid;

use crate::{
    accounts::{Accounts, NewUser},
    error::{ApiError, ApiResult},
    mail::{Alert, Letter},
};

/// How long a verification link works.
const VERIFY_TTL: chrono::Duration = chrono::Duration::hours(48);
/// How long a password-reset link works.
const RESET_TTL: chrono::Duration = chrono::Duration::minutes(30);
/// How soon after one verification email another may be asked for.
const RESEND_GAP: chrono::Duration = chrono::Duration::minutes(1);

impl Accounts {
    /// Registers `new` with verification on, telling the caller nothing of
    /// whether the email was taken: a new account gets its verification
    /// email, an existing one's owner a warning. Both paths hash a password
    /// and write a row, so they take as long.
    pub async fn register_verifying(&self, new: NewUser) -> ApiResult<Option<user::User>> {
        let to = new.email.to_string();
        match self.create_user(new, false).await {
            Ok(created) => {
                self.send_verification(&created).await?;
                Ok(Some(created))
            }
            Err(error) if error.reason() == "EMAIL_TAKEN" => {
                let mut conn = self.pool.get().await?;
                Letter::already_registered(&to).queue(&mut conn).await?;
                self.mail_wake.now();
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Emails `account` a new verification token (the older ones stop).
    pub async fn send_verification(&self, account: &user::User) -> ApiResult<()> {
        self.send_token(account, Purpose::VerifyEmail, VERIFY_TTL, Letter::verify_email)
            .await
    }

    /// Stores a new token of `purpose` for `account`, living `ttl`, and
    /// queues the letter `write` makes of it (to, token, public URL), in one
    /// transaction.
    async fn send_token(
        &self,
        account: &user::User,
        purpose: Purpose,
        ttl: chrono::Duration,
        write: fn(&str, &str, Option<&str>) -> Letter,
    ) -> ApiResult<()> {
        let (token, hash) = refresh::generate();
        let letter = write(&account.email, &token, self.config.public_url.as_deref());
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| -> ApiResult<()> {
            tokens::create_token(conn, &hash, account.id, purpose, Utc::now() + ttl).await?;
            letter.queue(conn).await?;
            Ok(())
        })
        .await?;
        self.mail_wake.now();
        Ok(())
    }

    /// Sends `user_id` another verification email, at most one a minute.
    pub async fn resend_verification(&self, user_id: Uuid) -> ApiResult<()> {
        let mut conn = self.pool.get().await?;
        let account = user::find(&mut conn, user_id)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".into()))?;
        if account.email_verified_at.is_some() {
            return Err(ApiError::FailedPrecondition("the email is verified already".into()).because("EMAIL_ALREADY_VERIFIED"));
        }
        if let Some(last) = tokens::last_token_at(&mut conn, user_id, Purpose::VerifyEmail).await?
            && let Some(wait) = (last + RESEND_GAP - Utc::now()).to_std().ok().filter(|wait| !wait.is_zero())
        {
            return Err(ApiError::ResourceExhausted {
                message: format!("a verification email was sent moments ago; retry in {}s", wait.as_secs().max(1)),
                retry_after: wait,
            });
        }
        drop(conn);
        self.send_verification(&account).await
    }

    /// Verifies the email of the account whose verification token is
    /// `token`.
    pub async fn verify_email(&self, token: &str) -> ApiResult<user::User> {
        let mut conn = self.pool.get().await?;
        let account = conn
            .transaction(async |conn| -> ApiResult<Option<user::User>> {
                let Some(user_id) = tokens::take_token(conn, &refresh::hash(token), Purpose::VerifyEmail).await? else {
                    return Ok(None);
                };
                user::set_email_verified(conn, user_id).await?;
                Ok(user::find(conn, user_id).await?)
            })
            .await?;
        account.ok_or_else(bad_token)
    }

    /// Emails a reset token to the active account `email`, if there is one;
    /// the caller answers the same either way.
    pub async fn request_password_reset(&self, email: &Email) -> ApiResult<Option<user::User>> {
        let mut conn = self.pool.get().await?;
        let Some(account) = user::find_by_email(&mut conn, email.as_str()).await?.filter(|u| u.active) else {
            return Ok(None);
        };
        drop(conn);
        self.send_token(&account, Purpose::ResetPassword, RESET_TTL, Letter::reset_password)
            .await?;
        Ok(Some(account))
    }

    /// Sets the password of the account whose reset token is `token` to
    /// `new`, marks its email verified, revokes every session and alerts the
    /// owner.
    pub async fn reset_password(&self, token: &str, new: &Password) -> ApiResult<user::User> {
        let hash = self.hasher.hash(new).await;
        let mut conn = self.pool.get().await?;
        let account = conn
            .transaction(async |conn| -> ApiResult<Option<user::User>> {
                let Some(user_id) = tokens::take_token(conn, &refresh::hash(token), Purpose::ResetPassword).await? else {
                    return Ok(None);
                };
                let Some(account) = user::find(conn, user_id).await?.filter(|u| u.active) else {
                    return Ok(None);
                };
                user::set_password_hash(conn, user_id, &hash).await?;
                user::set_email_verified(conn, user_id).await?;
                Letter::alert(&account.email, &Alert::PasswordChanged).queue(conn).await?;
                Ok(Some(account))
            })
            .await?
            .ok_or_else(bad_token)?;
        drop(conn);
        self.mail_wake.now();
        self.revoke_all(account.id, "password reset").await?;
        Ok(account)
    }

    /// Emails `user_id`'s owner that `what` happened. An alert is best
    /// effort: failing to queue one is logged, never the caller's error.
    pub async fn alert(&self, user_id: Uuid, what: Alert) {
        let queued = async {
            let mut conn = self.pool.get().await?;
            let Some(account) = user::find(&mut conn, user_id).await? else {
                return Ok(());
            };
            Letter::alert(&account.email, &what).queue(&mut conn).await?;
            anyhow::Ok(())
        };
        match queued.await {
            Ok(()) => self.mail_wake.now(),
            Err(error) => tracing::warn!(user = %user_id, error = format!("{error:#}"), ?what, "a security alert was not queued"),
        }
    }

    /// Whether a sign-in of `user_id` from `peer` comes from an address
    /// none of its sessions used; the first sign-in ever (registration) does
    /// not count. Ask before the session starts.
    pub async fn from_new_address(&self, user_id: Uuid, peer: &str) -> bool {
        let seen = async {
            let mut conn = self.pool.get().await?;
            anyhow::Ok(session::seen_before(&mut conn, user_id, peer, Uuid::nil()).await?)
        };
        match seen.await {
            Ok((signed_in_before, from_here)) => signed_in_before && !from_here,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot tell whether a sign-in comes from a new address"
                );
                false
            }
        }
    }
}

fn bad_token() -> ApiError {
    ApiError::invalid("token", "is unknown, used or expired").because("EMAIL_TOKEN_INVALID")
}

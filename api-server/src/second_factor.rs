//! Second factors in domain terms: enrolling a TOTP secret, confirming and
//! removing it, backup codes, and the challenge a login with MFA on answers
//! with. AuthService and UserService call these; the rules of codes live in
//! `folio_auth::second_factor`, the sealing in `folio_auth::secrets`, the
//! rows in `folio_db::models::second_factor`.
//!
//! Every use of a code is one conditional UPDATE (a TOTP code's time step
//! must be later than the last accepted one; a backup code must be unused),
//! so a code works once even when two calls race with it.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use folio_auth::{
    refresh,
    second_factor::{self as factor, Enrollment, Presented},
};
use folio_db::models::{
    second_factor::{self as rows, TotpSecret},
    user,
};
use uuid::Uuid;

use crate::{
    accounts::{Accounts, Session},
    error::{ApiError, ApiResult},
};

/// A login waiting for its second factor: the token the client passes to
/// VerifyMfa, and when it stops working.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// What signing in (or registering) gives: a session, or, with a second
/// factor on, a challenge to finish with VerifyMfa.
#[derive(Debug)]
pub enum SignIn {
    Session(Box<Session>),
    MfaRequired(Challenge),
    /// Register with verification on: nobody is signed in; an email went
    /// out (to a new account, or to the owner of a taken address).
    VerificationSent,
}

/// What a presented code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// It was right and is now used up.
    Accepted,
    /// It was wrong, or already used.
    Refused,
}

impl Accounts {
    /// Starts enrolling a new TOTP secret for `user_id`, replacing one not yet
    /// confirmed. FAILED_PRECONDITION when one is confirmed.
    pub async fn begin_totp(&self, user_id: Uuid) -> ApiResult<Enrollment> {
        let account = self.account(user_id).await?;
        let secret = factor::new_totp_secret();
        let sealed = self.secrets.seal(&secret, &sealing_context(user_id));
        let mut conn = self.pool.get().await?;
        if !rows::begin_totp(&mut conn, user_id, &sealed).await? {
            return Err(already_on());
        }
        factor::enrollment(&secret, &self.config.issuer, &account.email).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
    }

    /// Confirms `user_id`'s secret being enrolled with its first `code`,
    /// turning MFA on, and returns the first backup codes.
    pub async fn confirm_totp(&self, user_id: Uuid, code: &str) -> ApiResult<Vec<String>> {
        let mut conn = self.pool.get().await?;
        let Some(secret) = rows::find_totp(&mut conn, user_id).await? else {
            return Err(
                ApiError::FailedPrecondition("no TOTP enrollment is under way; call BeginTotpEnrollment first".into())
                    .because("MFA_NOT_ENROLLING"),
            );
        };
        if secret.confirmed_at.is_some() {
            return Err(already_on());
        }
        let step = self
            .totp_step(&secret, code)?
            .ok_or_else(|| ApiError::invalid("code", "is not the current code of the enrolled secret").because("MFA_CODE_WRONG"))?;
        let codes = factor::new_backup_codes();
        let hashes: Vec<Vec<u8>> = codes.iter().map(|(_, hash)| hash.clone()).collect();
        let confirmed = conn
            .transaction(async |conn| -> ApiResult<bool> {
                if !rows::accept_step(conn, user_id, step, true).await? {
                    return Ok(false);
                }
                rows::replace_backup_codes(conn, user_id, &hashes).await?;
                Ok(true)
            })
            .await?;
        if !confirmed {
            return Err(
                ApiError::invalid("code", "was already used, or the enrollment changed; use the next code").because("MFA_CODE_WRONG"),
            );
        }
        Ok(codes.into_iter().map(|(code, _)| code).collect())
    }

    /// Turns `user_id`'s second factor off, given their `password` and a
    /// current `code` (or a backup code).
    pub async fn disable_totp(&self, user_id: Uuid, password: &str, code: &str) -> ApiResult<()> {
        let account = self.account(user_id).await?;
        if !account.mfa_enabled {
            return Err(ApiError::FailedPrecondition("the second factor is not on".into()).because("MFA_NOT_ON"));
        }
        let verified = self.hasher.verify(Some(account.password_hash.clone()), password).await;
        if !verified.matches {
            return Err(ApiError::invalid("password", "is wrong"));
        }
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| -> ApiResult<()> {
            if self.spend(conn, user_id, code).await? == Spent::Refused {
                return Err(wrong_code());
            }
            rows::remove(conn, user_id).await?;
            Ok(())
        })
        .await
    }

    /// Replaces `user_id`'s backup codes, given a current `code` (or a backup
    /// code).
    pub async fn regenerate_backup_codes(&self, user_id: Uuid, code: &str) -> ApiResult<Vec<String>> {
        let account = self.account(user_id).await?;
        if !account.mfa_enabled {
            return Err(ApiError::FailedPrecondition("the second factor is not on".into()).because("MFA_NOT_ON"));
        }
        let codes = factor::new_backup_codes();
        let hashes: Vec<Vec<u8>> = codes.iter().map(|(_, hash)| hash.clone()).collect();
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| -> ApiResult<()> {
            if self.spend(conn, user_id, code).await? == Spent::Refused {
                return Err(wrong_code());
            }
            rows::replace_backup_codes(conn, user_id, &hashes).await?;
            Ok(())
        })
        .await?;
        Ok(codes.into_iter().map(|(code, _)| code).collect())
    }

    /// Turns `user_id`'s second factor off without a code (an admin's
    /// reset); their waiting logins end too. NOT_FOUND for no such user.
    pub async fn reset_mfa(&self, user_id: Uuid) -> ApiResult<user::User> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| -> ApiResult<()> {
            rows::remove(conn, user_id).await?;
            Ok(())
        })
        .await?;
        user::find(&mut conn, user_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user {user_id}")))
    }

    /// A new challenge for `user_id`'s login, which passed its password.
    pub async fn challenge(&self, user_id: Uuid) -> ApiResult<Challenge> {
        let (token, hash) = refresh::generate();
        let expires_at = Utc::now() + chrono::Duration::from_std(self.config.mfa_challenge_ttl).unwrap_or_default();
        let mut conn = self.pool.get().await?;
        rows::create_challenge(&mut conn, &hash, user_id, expires_at).await?;
        Ok(Challenge { token, expires_at })
    }

    /// Uses `code` (a TOTP code or a backup code) of `user_id`'s confirmed
    /// second factor. Run it in the transaction of what the code allows, so a
    /// code is spent only if that happens.
    pub async fn spend(&self, conn: &mut AsyncPgConnection, user_id: Uuid, code: &str) -> ApiResult<Spent> {
        let accepted = match Presented::parse(code) {
            None => false,
            Some(Presented::Backup(hash)) => rows::take_backup_code(conn, user_id, &hash).await?,
            Some(Presented::Totp(code)) => match rows::find_totp(conn, user_id).await?.filter(|s| s.confirmed_at.is_some()) {
                None => false,
                Some(secret) => match self.totp_step(&secret, &code)? {
                    None => false,
                    Some(step) => rows::accept_step(conn, user_id, step, false).await?,
                },
            },
        };
        Ok(if accepted { Spent::Accepted } else { Spent::Refused })
    }

    /// The time step `code` belongs to under `secret`, now.
    fn totp_step(&self, secret: &TotpSecret, code: &str) -> ApiResult<Option<i64>> {
        let plain = self
            .secrets
            .open(&secret.secret_sealed, &sealing_context(secret.user_id))
            .map_err(|error| {
                tracing::error!(user = %secret.user_id, %error, "a TOTP secret does not open");
                ApiError::FailedPrecondition("the second factor's secret cannot be read on this server; an admin can reset it".into())
                    .because("MFA_SECRET_UNREADABLE")
            })?;
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
        Ok(factor::check_totp(&plain, code, now).map(|step| i64::try_from(step).unwrap_or(i64::MAX)))
    }

    async fn account(&self, user_id: Uuid) -> ApiResult<user::User> {
        let mut conn = self.pool.get().await?;
        user::find(&mut conn, user_id)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".into()))
    }
}

/// What a user's TOTP secret is sealed to: its purpose and the account, so
/// a sealed value copied to another row does not open.
fn sealing_context(user_id: Uuid) -> String {
    format!("folio totp secret v1 user:{user_id}")
}

fn already_on() -> ApiError {
    ApiError::FailedPrecondition("the second factor is already on; DisableTotp first to enrol another".into()).because("MFA_ALREADY_ON")
}

fn wrong_code() -> ApiError {
    ApiError::invalid("code", "is wrong, or was already used").because("MFA_CODE_WRONG")
}

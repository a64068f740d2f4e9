//! Accounts and sessions: the logic behind AuthService and UserService, shared
//! by both (creating users, starting and revoking sessions), in domain terms:
//! a new account's details are checked into a [`NewUser`] (or [`Refused`],
//! which the services turn into their requests' field violations) and a
//! session's tokens come out as a [`Session`], which `convert.rs` writes.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use folio_auth::{
    Email, Role, config::AuthConfig, password::Hasher, password::Password, refresh, secrets::SecretKeys, tokens::TokenIssuer,
};
use folio_db::{
    self as db,
    models::{refresh_token, session, user},
};
use uuid::Uuid;

use crate::{
    auth::guard::Guard,
    breaches::Breaches,
    error::{ApiError, ApiResult},
    mail::Wake,
    oidc::Oidc,
};

/// Everything account RPCs need.
#[derive(Clone)]
pub struct Accounts {
    pub pool: db::Pool,
    pub hasher: Hasher,
    pub tokens: TokenIssuer,
    pub guard: Guard,
    pub config: AuthConfig,
    /// Seal second-factor secrets at rest.
    pub secrets: SecretKeys,
    /// Check new passwords against a breached-password range API.
    pub breaches: Breaches,
    /// Wakes the email sender after a commit that queued a letter.
    pub mail_wake: Wake,
    /// The OpenID Connect providers users may sign in with.
    pub oidc: Arc<Oidc>,
}

/// A new account's details, checked.
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub display_name: String,
    pub role: Role,
}

/// Why a new account's details were refused: the reason for each one that
/// is wrong.
#[derive(Debug, Default)]
pub struct Refused {
    pub email: Option<&'static str>,
    pub password: Option<&'static str>,
    pub display_name: Option<&'static str>,
}

impl NewUser {
    /// Checks the details, collecting every reason to refuse them.
    pub fn check(email: &str, password: &str, display_name: &str, role: Role) -> Result<NewUser, Refused> {
        let mut refused = Refused::default();
        let email = Email::parse(email).map_err(|e| refused.email = Some(e)).ok();
        let password = Password::parse(password).map_err(|e| refused.password = Some(e)).ok();
        let display_name = self::display_name(display_name).map_err(|e| refused.display_name = Some(e)).ok();
        match (email, password, display_name) {
            (Some(email), Some(password), Some(display_name)) => Ok(NewUser {
                email,
                password,
                display_name,
                role,
            }),
            _ => Err(refused),
        }
    }
}

/// A display name, trimmed; refused when over 200 characters or holding
/// control characters.
pub fn display_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        Err("must be at most 200 characters, without control characters")
    } else {
        Ok(name.to_owned())
    }
}

/// A session's tokens as issued, and the account they are for.
#[derive(Debug)]
pub struct Session {
    pub user: user::User,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    /// When the refresh token expires unused: the idle limit, at the latest
    /// the session's end.
    pub refresh_expires_at: DateTime<Utc>,
}

impl Accounts {
    /// Creates a user, its email `verified` or not; ALREADY_EXISTS when the
    /// email is taken.
    pub async fn create_user(&self, new: NewUser, verified: bool) -> ApiResult<user::User> {
        let hash = self.hasher.hash(&new.password).await;
        let now = Utc::now();
        let row = user::User {
            id: Uuid::now_v7(),
            email: new.email.to_string(),
            display_name: new.display_name,
            role: new.role.as_str().to_owned(),
            active: true,
            password_hash: hash,
            created_at: now,
            updated_at: now,
            quota_documents: None,
            quota_bytes: None,
            share_weight: None,
            mfa_enabled: false,
            email_verified_at: verified.then_some(now),
        };
        let mut conn = self.pool.get().await?;
        if !user::create(&mut conn, &row).await? {
            return Err(ApiError::AlreadyExists(format!("an account with email {} exists", row.email)).because("EMAIL_TAKEN"));
        }
        Ok(row)
    }

    /// Starts a session for `user`, signed in from `client`, and returns its
    /// first tokens.
    pub async fn start_session(&self, user: &user::User, client: &session::Client) -> ApiResult<Session> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| self.start_session_in(conn, user, client).await).await
    }

    /// Starts a session as [`Accounts::start_session`] does, in the caller's
    /// transaction.
    pub async fn start_session_in(&self, conn: &mut AsyncPgConnection, user: &user::User, client: &session::Client) -> ApiResult<Session> {
        let session_id = Uuid::now_v7();
        let expires_at = Utc::now() + chrono::Duration::from_std(self.config.refresh_ttl).unwrap_or_default();
        session::create(conn, session_id, user.id, expires_at, client).await?;
        self.issue(conn, user, session_id, expires_at).await
    }

    /// Issues an access token and a refresh token in `session_id`. Run it in
    /// the transaction that created the session or took the previous token.
    pub async fn issue(
        &self,
        conn: &mut AsyncPgConnection,
        user: &user::User,
        session_id: Uuid,
        session_expires_at: DateTime<Utc>,
    ) -> ApiResult<Session> {
        let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
        let (access_token, claims) = self.tokens.issue(user.id, role, session_id);
        let (refresh_token, hash) = refresh::generate();
        let now = Utc::now();
        let idle_expires_at = (now + chrono::Duration::from_std(self.config.refresh_idle).unwrap_or_default()).min(session_expires_at);
        refresh_token::insert(
            conn,
            &refresh_token::RefreshToken {
                token_hash: hash,
                session_id,
                created_at: now,
                idle_expires_at,
                used_at: None,
                access_jti: claims.jti,
                access_expires_at: claims.expires_at,
            },
        )
        .await?;
        Ok(Session {
            user: user.clone(),
            access_token,
            access_expires_at: claims.expires_at,
            refresh_token,
            refresh_expires_at: idle_expires_at,
        })
    }

    /// Revokes sessions and denies their live access tokens.
    pub async fn revoke_sessions(&self, ids: &[Uuid], reason: &str) -> ApiResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        let live = session::revoke(&mut conn, ids, reason).await?;
        self.guard.deny(&live).await;
        self.guard.announce_revoked(ids).await;
        Ok(())
    }

    /// Revokes every session of `user_id`.
    pub async fn revoke_all(&self, user_id: Uuid, reason: &str) -> ApiResult<()> {
        let mut conn = self.pool.get().await?;
        let ids = session::live_ids(&mut conn, user_id).await?;
        drop(conn);
        self.revoke_sessions(&ids, reason).await
    }

    /// Creates the bootstrap admin if configured and absent. Never changes an
    /// existing account.
    pub async fn bootstrap_admin(&self) -> anyhow::Result<()> {
        let Some((email, password)) = &self.config.bootstrap_admin else {
            return Ok(());
        };
        let mut conn = self.pool.get().await?;
        if user::find_by_email(&mut conn, email.as_str()).await?.is_some() {
            return Ok(());
        }
        drop(conn);
        let password = Password::parse(password).map_err(|e| anyhow::anyhow!("FOLIO_ADMIN_PASSWORD {e}"))?;
        match self
            .create_user(
                NewUser {
                    email: email.clone(),
                    password,
                    display_name: "Administrator".into(),
                    role: Role::Admin,
                },
                true,
            )
            .await
        {
            Ok(_) => tracing::info!(%email, "bootstrap admin created"),
            Err(error) if error.reason() == "EMAIL_TAKEN" => {}
            Err(error) => anyhow::bail!("cannot create the bootstrap admin: {error}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use folio_auth::Role;

    use super::NewUser;

    #[test]
    fn every_wrong_detail_has_its_reason_and_names_are_trimmed() {
        let Err(refused) = NewUser::check("not an email", "short", &"x".repeat(201), Role::Member) else {
            panic!("bad details accepted");
        };
        assert!(refused.email.is_some() && refused.password.is_some() && refused.display_name.is_some());

        let Err(refused) = NewUser::check("a@example.com", "short", "Ann", Role::Member) else {
            panic!("a short password accepted");
        };
        assert!(refused.email.is_none() && refused.password.is_some() && refused.display_name.is_none());

        let Ok(new) = NewUser::check("a@example.com", "an uncommon passphrase 42", "  Ann  ", Role::Viewer) else {
            panic!("good details refused");
        };
        assert_eq!((new.display_name.as_str(), new.role), ("Ann", Role::Viewer));
    }
}

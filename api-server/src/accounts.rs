//! Accounts and sessions: the logic behind AuthService and UserService, shared
//! by both (creating users, starting and revoking sessions).

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use folio_auth::{Email, Role, config::AuthConfig, password::Hasher, password::Password, refresh, tokens::TokenIssuer};
use folio_db::{
    self as db,
    models::{refresh_token, session, user},
};
use folio_proto::v1 as pb;
use tonic_types::FieldViolation;
use uuid::Uuid;

use crate::{
    auth::guard::Guard,
    convert::{timestamp, user_to_proto},
    error::{ApiError, ApiResult},
};

/// Everything account RPCs need.
#[derive(Clone)]
pub struct Accounts {
    pub pool: db::Pool,
    pub hasher: Hasher,
    pub tokens: TokenIssuer,
    pub guard: Guard,
    pub config: AuthConfig,
}

/// A validated request to create a user.
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub display_name: String,
    pub role: Role,
}

impl NewUser {
    /// Validates the fields, collecting every violation.
    pub fn parse(email: &str, password: &str, display_name: &str, role: Role) -> ApiResult<NewUser> {
        let mut violations = Vec::new();
        let email = Email::parse(email)
            .map_err(|e| violations.push(FieldViolation::new("email", e)))
            .ok();
        let password = Password::parse(password)
            .map_err(|e| violations.push(FieldViolation::new("password", e)))
            .ok();
        let display_name = display_name.trim().to_owned();
        if display_name.chars().count() > 200 || display_name.chars().any(char::is_control) {
            violations.push(FieldViolation::new(
                "display_name",
                "must be at most 200 characters, without control characters",
            ));
        }
        match (email, password) {
            (Some(email), Some(password)) if violations.is_empty() => Ok(NewUser {
                email,
                password,
                display_name,
                role,
            }),
            _ => Err(ApiError::InvalidArgument(violations)),
        }
    }
}

impl Accounts {
    /// Creates a user; ALREADY_EXISTS when the email is taken.
    pub async fn create_user(&self, new: NewUser) -> ApiResult<user::User> {
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
        };
        let mut conn = self.pool.get().await?;
        if !user::create(&mut conn, &row).await? {
            return Err(ApiError::AlreadyExists(format!("an account with email {} exists", row.email)));
        }
        Ok(row)
    }

    /// Starts a session for `user` and returns its first tokens.
    pub async fn start_session(&self, user: &user::User) -> ApiResult<pb::Session> {
        let session_id = Uuid::now_v7();
        let expires_at = Utc::now() + chrono::Duration::from_std(self.config.refresh_ttl).unwrap_or_default();
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            session::create(conn, session_id, user.id, expires_at).await?;
            self.issue(conn, user, session_id, expires_at).await
        })
        .await
    }

    /// Issues an access token and a refresh token in `session_id`. Run it in
    /// the transaction that created the session or took the previous token.
    pub async fn issue(
        &self,
        conn: &mut AsyncPgConnection,
        user: &user::User,
        session_id: Uuid,
        session_expires_at: DateTime<Utc>,
    ) -> ApiResult<pb::Session> {
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
        Ok(pb::Session {
            access_token,
            access_expires_at: Some(timestamp(claims.expires_at)),
            refresh_token,
            refresh_expires_at: Some(timestamp(idle_expires_at)),
            user: Some(user_to_proto(user)),
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
            .create_user(NewUser {
                email: email.clone(),
                password,
                display_name: "Administrator".into(),
                role: Role::Admin,
            })
            .await
        {
            Ok(_) => tracing::info!(%email, "bootstrap admin created"),
            Err(ApiError::AlreadyExists(_)) => {}
            Err(error) => anyhow::bail!("cannot create the bootstrap admin: {error}"),
        }
        Ok(())
    }
}

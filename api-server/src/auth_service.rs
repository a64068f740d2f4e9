//! `folio.v1.AuthService`: register, log in (with its second factor), refresh,
//! log out, who am I, change password, public keys, the caller's sessions and
//! second factor. Each RPC is a shim: it reads the request into domain
//! terms (here, naming the request's fields in what it refuses), calls an inner
//! function below, which takes and returns domain values (`accounts::Session`,
//! user rows), and converts the answer (`convert.rs`).

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use folio_auth::{Email, Role, password::Password, refresh, tokens::PublicKeyInfo};
use folio_db::models::{refresh_token, second_factor as factor_rows, session, user};
use folio_proto::v1::{
    self as pb, BeginTotpEnrollmentRequest, ChangePasswordRequest, ChangePasswordResponse, ConfirmTotpRequest, DisableTotpRequest,
    DisableTotpResponse, FinishOidcLoginRequest, ListPublicKeysRequest, ListPublicKeysResponse, ListSessionsRequest, ListSessionsResponse,
    LoginRequest, LogoutRequest, LogoutResponse, RefreshRequest, RegenerateBackupCodesRequest, RegisterRequest,
    RequestPasswordResetRequest, RequestPasswordResetResponse, ResendVerificationRequest, ResendVerificationResponse, ResetPasswordRequest,
    ResetPasswordResponse, RevokeSessionRequest, RevokeSessionResponse, StartOidcLoginRequest, VerifyEmailRequest, VerifyEmailResponse,
    VerifyMfaRequest, WhoAmIRequest, auth_service_server::AuthService,
};
use tonic::{Request, Response, Status};
use tonic_types::FieldViolation;
use uuid::Uuid;

use crate::{
    accounts::{Accounts, NewUser, Session},
    audit::{self, AuditNote},
    auth::{self, Principal},
    convert::{
        backup_codes_to_proto, enrollment_to_proto, oidc_login_to_proto, public_keys_to_proto, refused_to_violations, session_to_proto,
        sessions_to_proto, sign_in_to_proto, user_to_proto,
    },
    error::{ApiError, ApiResult},
    mail::Alert,
    second_factor::{SignIn, Spent},
};

/// The AuthService implementation.
pub struct Auth {
    pub accounts: Accounts,
}

#[tonic::async_trait]
impl AuthService for Auth {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<pb::Session>, Status> {
        let client = client_of(&request);
        let new = new_user(&request.into_inner());
        Ok(Response::new(sign_in_to_proto(self.register(new, &client).await?)))
    }

    async fn verify_email(&self, request: Request<VerifyEmailRequest>) -> Result<Response<VerifyEmailResponse>, Status> {
        let token = &request.get_ref().token;
        required(&[("token", token)])?;
        let account = self.accounts.verify_email(token.trim()).await?;
        audit::note(AuditNote {
            event: "email_verified".into(),
            target: format!("user:{}", account.id),
            actor_id: Some(account.id),
            actor_email: account.email.clone(),
        });
        Ok(Response::new(VerifyEmailResponse {
            user: Some(user_to_proto(&account)),
        }))
    }

    async fn resend_verification(
        &self,
        request: Request<ResendVerificationRequest>,
    ) -> Result<Response<ResendVerificationResponse>, Status> {
        let principal = auth::principal(&request)?;
        self.accounts.resend_verification(principal.user_id).await?;
        note_own("verification_sent", &principal);
        Ok(Response::new(ResendVerificationResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<RequestPasswordResetRequest>,
    ) -> Result<Response<RequestPasswordResetResponse>, Status> {
        let email = Email::parse(&request.get_ref().email).map_err(|e| ApiError::invalid("email", e))?;
        let account = self.accounts.request_password_reset(&email).await?;
        audit::note(AuditNote {
            event: "password_reset_requested".into(),
            target: account.map(|a| format!("user:{}", a.id)).unwrap_or_default(),
            actor_email: email.to_string(),
            ..Default::default()
        });
        Ok(Response::new(RequestPasswordResetResponse {}))
    }

    async fn reset_password(&self, request: Request<ResetPasswordRequest>) -> Result<Response<ResetPasswordResponse>, Status> {
        let request = request.into_inner();
        required(&[("token", &request.token)])?;
        let new = Password::parse(&request.new_password).map_err(|e| ApiError::invalid("new_password", e))?;
        self.accounts.breaches.refuse_breached(&new, "new_password").await?;
        let account = self.accounts.reset_password(request.token.trim(), &new).await?;
        audit::note(AuditNote {
            event: "password_reset".into(),
            target: format!("user:{}", account.id),
            actor_id: Some(account.id),
            actor_email: account.email.clone(),
        });
        Ok(Response::new(ResetPasswordResponse {}))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<pb::Session>, Status> {
        let client = client_of(&request);
        let request = request.into_inner();
        let email = login_email(&request)?;
        Ok(Response::new(sign_in_to_proto(
            self.login(email, &request.password, &client).await?,
        )))
    }

    async fn start_oidc_login(&self, request: Request<StartOidcLoginRequest>) -> Result<Response<pb::OidcLogin>, Status> {
        let request = request.into_inner();
        required(&[("provider", &request.provider), ("redirect_uri", &request.redirect_uri)])?;
        let started = self
            .accounts
            .oidc
            .start(request.provider.trim(), request.redirect_uri.trim())
            .await?;
        Ok(Response::new(oidc_login_to_proto(started)))
    }

    async fn finish_oidc_login(&self, request: Request<FinishOidcLoginRequest>) -> Result<Response<pb::Session>, Status> {
        let client = client_of(&request);
        let request = request.into_inner();
        required(&[("state", &request.state), ("code", &request.code)])?;
        Ok(Response::new(sign_in_to_proto(
            self.finish_oidc_login(&request.state, &request.code, &client).await?,
        )))
    }

    async fn verify_mfa(&self, request: Request<VerifyMfaRequest>) -> Result<Response<pb::Session>, Status> {
        let client = client_of(&request);
        let request = request.into_inner();
        required(&[("challenge", &request.challenge), ("code", &request.code)])?;
        Ok(Response::new(session_to_proto(
            self.verify_mfa(&request.challenge, &request.code, &client).await?,
        )))
    }

    async fn begin_totp_enrollment(&self, request: Request<BeginTotpEnrollmentRequest>) -> Result<Response<pb::TotpEnrollment>, Status> {
        let principal = auth::principal(&request)?;
        Ok(Response::new(enrollment_to_proto(
            self.accounts.begin_totp(principal.user_id).await?,
        )))
    }

    async fn confirm_totp(&self, request: Request<ConfirmTotpRequest>) -> Result<Response<pb::BackupCodes>, Status> {
        let principal = auth::principal(&request)?;
        let code = &request.get_ref().code;
        required(&[("code", code)])?;
        let codes = self.accounts.confirm_totp(principal.user_id, code).await?;
        note_own("mfa_enabled", &principal);
        self.accounts.alert(principal.user_id, Alert::MfaOn).await;
        Ok(Response::new(backup_codes_to_proto(codes)))
    }

    async fn disable_totp(&self, request: Request<DisableTotpRequest>) -> Result<Response<DisableTotpResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        required(&[("password", &request.password), ("code", &request.code)])?;
        self.accounts
            .disable_totp(principal.user_id, &request.password, &request.code)
            .await?;
        note_own("mfa_disabled", &principal);
        self.accounts.alert(principal.user_id, Alert::MfaOff).await;
        Ok(Response::new(DisableTotpResponse {}))
    }

    async fn regenerate_backup_codes(&self, request: Request<RegenerateBackupCodesRequest>) -> Result<Response<pb::BackupCodes>, Status> {
        let principal = auth::principal(&request)?;
        let code = &request.get_ref().code;
        required(&[("code", code)])?;
        let codes = self.accounts.regenerate_backup_codes(principal.user_id, code).await?;
        note_own("backup_codes_regenerated", &principal);
        Ok(Response::new(backup_codes_to_proto(codes)))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<pb::Session>, Status> {
        let client = client_of(&request);
        let request = request.into_inner();
        if request.refresh_token.is_empty() {
            return Err(ApiError::invalid("refresh_token", "is required").into());
        }
        Ok(Response::new(session_to_proto(
            self.refresh(&request.refresh_token, &client).await?,
        )))
    }

    async fn list_sessions(&self, request: Request<ListSessionsRequest>) -> Result<Response<ListSessionsResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let user_id = match request.user_id.trim() {
            "" => principal.user_id,
            id => Uuid::parse_str(id).map_err(|_| ApiError::invalid("user_id", format!("{id:?} is not a user id")))?,
        };
        let sessions = self.list_sessions(&principal, user_id).await?;
        Ok(Response::new(sessions_to_proto(&sessions, principal.session_id)))
    }

    async fn revoke_session(&self, request: Request<RevokeSessionRequest>) -> Result<Response<RevokeSessionResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let id = Uuid::parse_str(request.session_id.trim())
            .map_err(|_| ApiError::invalid("session_id", format!("{:?} is not a session id", request.session_id)))?;
        self.revoke_session(&principal, id).await?;
        Ok(Response::new(RevokeSessionResponse {}))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        let principal = auth::principal(&request)?;
        self.logout(&principal).await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn who_am_i(&self, request: Request<WhoAmIRequest>) -> Result<Response<pb::User>, Status> {
        let principal = auth::principal(&request)?;
        Ok(Response::new(user_to_proto(&self.who_am_i(&principal).await?)))
    }

    async fn change_password(&self, request: Request<ChangePasswordRequest>) -> Result<Response<ChangePasswordResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let new = Password::parse(&request.new_password).map_err(|e| ApiError::invalid("new_password", e))?;
        self.change_password(&principal, &new, &request.current_password).await?;
        Ok(Response::new(ChangePasswordResponse {}))
    }

    async fn list_public_keys(&self, _request: Request<ListPublicKeysRequest>) -> Result<Response<ListPublicKeysResponse>, Status> {
        Ok(Response::new(public_keys_to_proto(self.public_keys())))
    }
}

/// The client a call comes from: its address and user agent.
fn client_of<T>(request: &Request<T>) -> session::Client {
    let user_agent = request
        .metadata()
        .get("user-agent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    session::Client {
        peer: auth::peer(request),
        user_agent: user_agent.chars().take(256).collect(),
    }
}

/// Refuses a request missing any of `fields` (name, value), naming each.
fn required(fields: &[(&str, &str)]) -> ApiResult<()> {
    let violations: Vec<FieldViolation> = fields
        .iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(field, _)| FieldViolation::new(*field, "is required"))
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::InvalidArgument(violations))
    }
}

/// The alert of a sign-in from `client`'s new address.
fn new_address(client: &session::Client) -> Alert {
    Alert::NewAddress {
        peer: client.peer.clone(),
        user_agent: client.user_agent.clone(),
    }
}

/// Audits a change the caller made to their own account.
fn note_own(event: &str, principal: &Principal) {
    audit::note(AuditNote {
        event: event.into(),
        target: format!("user:{}", principal.user_id),
        ..Default::default()
    });
}

/// The new account a RegisterRequest asks for; every invalid field is named.
fn new_user(request: &RegisterRequest) -> ApiResult<NewUser> {
    NewUser::check(&request.email, &request.password, &request.display_name, Role::Member).map_err(refused_to_violations)
}

/// The email a LoginRequest logs in with; a malformed email and a missing
/// password are both named.
fn login_email(request: &LoginRequest) -> ApiResult<Email> {
    let mut violations = Vec::new();
    let email = Email::parse(&request.email)
        .map_err(|e| violations.push(FieldViolation::new("email", e)))
        .ok();
    if request.password.is_empty() {
        violations.push(FieldViolation::new("password", "is required"));
    }
    email.filter(|_| violations.is_empty()).ok_or(ApiError::InvalidArgument(violations))
}

/// The one answer for a failed login, whatever the reason.
const LOGIN_REFUSED: &str = "email or password is wrong";

impl Auth {
    /// Creates a member's account and starts its first session. `new` is the
    /// account as read from the request: its refusal counts only once
    /// self-registration is open, so a closed one is PERMISSION_DENIED
    /// whatever the request says.
    async fn register(&self, new: ApiResult<NewUser>, client: &session::Client) -> ApiResult<SignIn> {
        if !self.accounts.config.open_registration {
            return Err(
                ApiError::PermissionDenied("self-registration is closed; ask an admin for an account".into())
                    .because("REGISTRATION_CLOSED"),
            );
        }
        let new = new?;
        self.accounts.refuse_password_for(new.email.as_str())?;
        self.accounts.breaches.refuse_breached(&new.password, "password").await?;
        if self.accounts.config.require_email_verification {
            let email = new.email.to_string();
            let created = self.accounts.register_verifying(new).await?;
            audit::note(AuditNote {
                event: if created.is_some() { "register" } else { "register_existing_email" }.into(),
                target: created.map(|c| format!("user:{}", c.id)).unwrap_or_default(),
                actor_email: email,
                ..Default::default()
            });
            return Ok(SignIn::VerificationSent);
        }
        let created = self.accounts.create_user(new, false).await?;
        audit::note(AuditNote {
            event: "register".into(),
            target: format!("user:{}", created.id),
            actor_id: Some(created.id),
            actor_email: created.email.clone(),
        });
        Ok(SignIn::Session(Box::new(self.accounts.start_session(&created, client).await?)))
    }

    /// Starts a session for the active account `email` whose password is
    /// `password`, unless `peer` or the email failed too often; with a second
    /// factor on, answers a challenge instead. Every other refusal is the
    /// same answer, after the same time.
    async fn login(&self, email: Email, password: &str, client: &session::Client) -> ApiResult<SignIn> {
        let peer = client.peer.as_str();
        let guard = &self.accounts.guard;
        self.accounts.refuse_password_for(email.as_str())?;
        self.pass_login_gate(email.as_str(), peer).await?;
        let mut conn = self.accounts.pool.get().await?;
        let found = user::find_by_email(&mut conn, email.as_str()).await?;
        drop(conn);
        // An unknown email is checked against a dummy hash so it takes as long.
        let verified = self
            .accounts
            .hasher
            .verify(found.as_ref().map(|u| u.password_hash.clone()), password)
            .await;
        let Some(account) = found.filter(|u| verified.matches && u.active) else {
            guard.login_failed(email.as_str(), peer).await;
            audit::note(AuditNote {
                event: "login_failed".into(),
                actor_email: email.to_string(),
                ..Default::default()
            });
            return Err(ApiError::Unauthenticated(LOGIN_REFUSED.into()).because("LOGIN_FAILED"));
        };
        if verified.needs_rehash
            && let Ok(password) = Password::parse(password)
        {
            let hash = self.accounts.hasher.hash(&password).await;
            let mut conn = self.accounts.pool.get().await?;
            user::set_password_hash(&mut conn, account.id, &hash).await?;
            tracing::info!(user = %account.id, "password hash upgraded to the current argon2 parameters");
        }
        if account.mfa_enabled {
            // The failure counts stay until the second factor passes too, so
            // a known password does not buy unlimited guesses at codes.
            let challenge = self.accounts.challenge(account.id).await?;
            audit::note(AuditNote {
                event: "mfa_challenged".into(),
                target: format!("user:{}", account.id),
                actor_id: Some(account.id),
                actor_email: account.email.clone(),
            });
            return Ok(SignIn::MfaRequired(challenge));
        }
        guard.login_succeeded(email.as_str(), peer).await;
        if self.accounts.from_new_address(account.id, peer).await {
            self.accounts.alert(account.id, new_address(client)).await;
        }
        audit::note(AuditNote {
            event: "login".into(),
            target: format!("user:{}", account.id),
            actor_id: Some(account.id),
            actor_email: account.email.clone(),
        });
        Ok(SignIn::Session(Box::new(self.accounts.start_session(&account, client).await?)))
    }

    /// Finishes a sign-in through an identity provider: its identity's
    /// account signs in as with a password (a challenge when its second
    /// factor is on).
    async fn finish_oidc_login(&self, state: &str, code: &str, client: &session::Client) -> ApiResult<SignIn> {
        let identity = self.accounts.oidc.finish(state, code).await?;
        let account = self.accounts.identity_account(&identity).await?;
        audit::note(AuditNote {
            event: if account.mfa_enabled { "mfa_challenged" } else { "oidc_login" }.into(),
            target: format!("user:{}", account.id),
            actor_id: Some(account.id),
            actor_email: account.email.clone(),
        });
        if account.mfa_enabled {
            return Ok(SignIn::MfaRequired(self.accounts.challenge(account.id).await?));
        }
        if self.accounts.from_new_address(account.id, &client.peer).await {
            self.accounts.alert(account.id, new_address(client)).await;
        }
        Ok(SignIn::Session(Box::new(self.accounts.start_session(&account, client).await?)))
    }

    /// Refuses a login (or its second factor) for `email` from `peer` while
    /// the pair or the address is throttled, and slows one down while the
    /// account failed often.
    async fn pass_login_gate(&self, email: &str, peer: &str) -> ApiResult<()> {
        let gate = self.accounts.guard.login_gate(email, peer).await;
        if let Some(limited) = gate.blocked {
            audit::note(AuditNote {
                event: "rate_limited".into(),
                actor_email: email.to_owned(),
                ..Default::default()
            });
            return Err(ApiError::ResourceExhausted {
                message: format!("too many failed logins; retry in {}s", limited.retry_after.as_secs()),
                retry_after: limited.retry_after,
            }
            .because("LOGIN_THROTTLED"));
        }
        if !gate.delay.is_zero() {
            tracing::info!(
                delay_ms = gate.delay.as_millis() as u64,
                "login slowed down: the account failed often"
            );
            tokio::time::sleep(gate.delay).await;
        }
        Ok(())
    }

    /// Finishes the login waiting on challenge `token` with `code`. The
    /// challenge ends and the code is spent in the transaction that starts
    /// the session, so each works once. A wrong code counts against the
    /// challenge and as a failed login.
    async fn verify_mfa(&self, token: &str, code: &str, client: &session::Client) -> ApiResult<Session> {
        let unknown = || {
            ApiError::Unauthenticated("the login's challenge is unknown or expired; log in again".into()).because("MFA_CHALLENGE_UNKNOWN")
        };
        let hash = refresh::hash(token);
        let mut conn = self.accounts.pool.get().await?;
        let Some(challenge) = factor_rows::find_challenge(&mut conn, &hash).await? else {
            return Err(unknown());
        };
        let Some(account) = user::find(&mut conn, challenge.user_id).await?.filter(|u| u.active) else {
            return Err(unknown());
        };
        drop(conn);
        self.pass_login_gate(&account.email, &client.peer).await?;
        let new_address = self.accounts.from_new_address(account.id, &client.peer).await;
        let mut conn = self.accounts.pool.get().await?;
        let session = conn
            .transaction(async |conn| -> ApiResult<Option<Session>> {
                // A refused code writes nothing; an accepted one is rolled
                // back with the rest if the challenge was taken meanwhile.
                if self.accounts.spend(conn, account.id, code).await? == Spent::Refused {
                    return Ok(None);
                }
                if !factor_rows::take_challenge(conn, &hash).await? {
                    return Err(unknown());
                }
                Ok(Some(self.accounts.start_session_in(conn, &account, client).await?))
            })
            .await?;
        let Some(session) = session else {
            let limit = i32::try_from(self.accounts.config.mfa_attempts).unwrap_or(i32::MAX);
            let attempts = factor_rows::challenge_failed(&mut conn, &hash, limit).await?;
            drop(conn);
            self.accounts.guard.login_failed(&account.email, &client.peer).await;
            audit::note(AuditNote {
                event: "mfa_failed".into(),
                target: format!("user:{}", account.id),
                actor_email: account.email.clone(),
                ..Default::default()
            });
            let message = match attempts {
                Some(attempts) if attempts < limit => format!("the code is wrong; {} attempt(s) left", limit - attempts),
                _ => "the code is wrong, and that was the last attempt: log in again".to_owned(),
            };
            return Err(ApiError::Unauthenticated(message).because("MFA_CODE_WRONG"));
        };
        self.accounts.guard.login_succeeded(&account.email, &client.peer).await;
        if new_address {
            self.accounts.alert(account.id, self::new_address(client)).await;
        }
        audit::note(AuditNote {
            event: "login".into(),
            target: format!("user:{}", account.id),
            actor_id: Some(account.id),
            actor_email: account.email.clone(),
        });
        Ok(session)
    }

    /// Takes the refresh token `token` and issues the next tokens of its
    /// session. A token used before (outside the grace of a concurrent
    /// refresh) revokes its session.
    async fn refresh(&self, token: &str, client: &session::Client) -> ApiResult<Session> {
        let hash = refresh::hash(token);
        let mut conn = self.accounts.pool.get().await?;
        let outcome = conn
            .transaction(async |conn| -> ApiResult<Result<Session, RefreshRefusal>> {
                let Some(taken) = refresh_token::take(conn, &hash).await? else {
                    return Ok(Err(match refresh_token::find(conn, &hash).await? {
                        None => RefreshRefusal::Unknown,
                        Some(used) => RefreshRefusal::Used(used),
                    }));
                };
                let Some(session) = session::find(conn, taken.session_id).await? else {
                    return Ok(Err(RefreshRefusal::Unknown));
                };
                let now = Utc::now();
                if session.revoked_at.is_some() || session.expires_at <= now || taken.idle_expires_at <= now {
                    return Ok(Err(RefreshRefusal::Expired));
                }
                let Some(account) = user::find(conn, session.user_id).await?.filter(|u| u.active) else {
                    return Ok(Err(RefreshRefusal::Expired));
                };
                let issued = self.accounts.issue(conn, &account, session.id, session.expires_at).await?;
                session::used(conn, session.id, client).await?;
                audit::note(AuditNote {
                    event: "refresh".into(),
                    target: format!("session:{}", session.id),
                    actor_id: Some(account.id),
                    actor_email: account.email.clone(),
                });
                Ok(Ok(issued))
            })
            .await?;
        drop(conn);
        match outcome {
            Ok(session) => Ok(session),
            Err(RefreshRefusal::Unknown) => Err(ApiError::Unauthenticated("unknown refresh token".into()).because("REFRESH_TOKEN_UNKNOWN")),
            Err(RefreshRefusal::Expired) => {
                Err(ApiError::Unauthenticated("the session has ended; log in again".into()).because("SESSION_ENDED"))
            }
            Err(RefreshRefusal::Used(used)) => {
                let grace = chrono::Duration::from_std(self.accounts.config.refresh_reuse_grace).unwrap_or_default();
                if used.used_at.is_some_and(|at| Utc::now() - at <= grace) {
                    // A concurrent refresh with the same token won the race.
                    return Err(ApiError::Unauthenticated("the refresh token was just used".into()).because("REFRESH_RACE_LOST"));
                }
                tracing::warn!(session = %used.session_id, "refresh token reuse detected, revoking its family");
                self.accounts.revoke_sessions(&[used.session_id], "refresh token reuse").await?;
                let mut conn = self.accounts.pool.get().await?;
                if let Some(family) = session::find(&mut conn, used.session_id).await? {
                    drop(conn);
                    self.accounts.alert(family.user_id, Alert::RefreshReuse).await;
                }
                audit::note(AuditNote {
                    event: "refresh_reuse_detected".into(),
                    target: format!("session:{}", used.session_id),
                    ..Default::default()
                });
                Err(
                    ApiError::Unauthenticated("the refresh token was already used; the session is revoked".into())
                        .because("REFRESH_TOKEN_REUSED"),
                )
            }
        }
    }

    /// Ends the caller's session.
    async fn logout(&self, principal: &Principal) -> ApiResult<()> {
        self.accounts.revoke_sessions(&[principal.session_id], "logout").await?;
        audit::note(AuditNote {
            event: "logout".into(),
            target: format!("session:{}", principal.session_id),
            ..Default::default()
        });
        Ok(())
    }

    /// `user_id`'s live sessions: the caller's own, or, for an admin,
    /// anyone's.
    async fn list_sessions(&self, principal: &Principal, user_id: Uuid) -> ApiResult<Vec<session::Session>> {
        if user_id != principal.user_id && principal.role != Role::Admin {
            return Err(ApiError::PermissionDenied("only an admin lists another user's sessions".into()).because("ROLE_REQUIRED"));
        }
        let mut conn = self.accounts.pool.get().await?;
        Ok(session::list_live(&mut conn, user_id).await?)
    }

    /// Revokes the session `id`: the caller's own, or, for an admin, anyone's.
    /// Another user's is NOT_FOUND to anyone else, as is an unknown one.
    async fn revoke_session(&self, principal: &Principal, id: Uuid) -> ApiResult<()> {
        let mut conn = self.accounts.pool.get().await?;
        let found = session::find(&mut conn, id).await?;
        drop(conn);
        let Some(found) = found.filter(|s| s.user_id == principal.user_id || principal.role == Role::Admin) else {
            return Err(ApiError::NotFound(format!("no session {id}")));
        };
        let reason = if found.user_id == principal.user_id {
            "revoked by its user"
        } else {
            "revoked by an admin"
        };
        self.accounts.revoke_sessions(&[found.id], reason).await?;
        audit::note(AuditNote {
            event: "session_revoked".into(),
            target: format!("session:{}", found.id),
            ..Default::default()
        });
        Ok(())
    }

    /// The caller's account.
    async fn who_am_i(&self, principal: &Principal) -> ApiResult<user::User> {
        let mut conn = self.accounts.pool.get().await?;
        let found = user::find(&mut conn, principal.user_id).await?;
        found.ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".into()))
    }

    /// Sets the caller's password to `new` if `current` is their password
    /// now, and ends every session of theirs.
    async fn change_password(&self, principal: &Principal, new: &Password, current: &str) -> ApiResult<()> {
        let mut conn = self.accounts.pool.get().await?;
        let account = user::find(&mut conn, principal.user_id)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".into()))?;
        drop(conn);
        let verified = self.accounts.hasher.verify(Some(account.password_hash.clone()), current).await;
        if !verified.matches {
            return Err(ApiError::invalid("current_password", "is wrong"));
        }
        self.accounts.breaches.refuse_breached(new, "new_password").await?;
        let hash = self.accounts.hasher.hash(new).await;
        let mut conn = self.accounts.pool.get().await?;
        user::set_password_hash(&mut conn, account.id, &hash).await?;
        drop(conn);
        self.accounts.revoke_all(account.id, "password changed").await?;
        self.accounts.alert(account.id, Alert::PasswordChanged).await;
        audit::note(AuditNote {
            event: "password_changed".into(),
            target: format!("user:{}", account.id),
            ..Default::default()
        });
        Ok(())
    }

    /// The keys that verify tokens, the signing one marked.
    fn public_keys(&self) -> &[PublicKeyInfo] {
        self.accounts.tokens.keys.public_keys()
    }
}

enum RefreshRefusal {
    Unknown,
    Expired,
    Used(refresh_token::RefreshToken),
}

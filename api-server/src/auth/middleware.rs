//! The tower layer in front of every gRPC service: authentication, the access
//! table, rate limits and the audit row of each call.

use std::{
    cell::RefCell,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use folio_auth::{Role, tokens::TokenIssuer};
use folio_db::{self as db, models::audit_event::NewAuditEvent};
use futures_util::future::BoxFuture;
use tonic::{Code, Status, body::Body, transport::server::TcpConnectInfo};

use super::{
    Principal,
    client::{ClientAddress, client_address},
    guard::{Guard, Limited, TokenCheck},
    policy::{self, Access},
};
use crate::{
    audit::{self, Auditor},
    error::ApiError,
};

/// What the middleware needs.
pub struct AuthState {
    pub tokens: TokenIssuer,
    pub pool: db::Pool,
    pub guard: Guard,
    pub auditor: Auditor,
}

/// The layer; `Server::builder().layer(AuthLayer::new(state))`.
#[derive(Clone)]
pub struct AuthLayer {
    state: Arc<AuthState>,
}

impl AuthLayer {
    pub fn new(state: AuthState) -> Self {
        AuthLayer { state: Arc::new(state) }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service the layer wraps around the gRPC routes.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    state: Arc<AuthState>,
}

/// The outcome of admission: who called (if known) and why they were refused
/// (if they were).
struct Admission {
    principal: Option<Principal>,
    refusal: Option<Status>,
}

impl<S> tower::Service<http::Request<Body>> for Authenticated<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let started = Instant::now();
            let path = request.uri().path().to_owned();
            let peer = request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(|info| info.remote_addr())
                .map(|addr| client_address(addr.ip(), request.headers(), &state.guard.config.trusted_proxies).to_string())
                .unwrap_or_default();
            request.extensions_mut().insert(ClientAddress(peer.clone()));
            let access = policy::required(&path);
            let bearer = bearer_token(request.headers());
            let admission = state.admit(access, bearer.as_deref(), &peer).await;
            if let Some(principal) = &admission.principal {
                request.extensions_mut().insert(principal.clone());
            }
            let (response, note) = match admission.refusal {
                Some(status) => (status.into_http(), None),
                None => {
                    // Handlers set their audit note in this task-local scope.
                    let (result, note) = audit::NOTE
                        .scope(RefCell::new(None), async move {
                            let result = inner.call(request).await;
                            (result, audit::NOTE.with(|note| note.borrow_mut().take()))
                        })
                        .await;
                    (result?, note)
                }
            };
            if admission.principal.is_some() || note.is_some() {
                let note = note.unwrap_or_default();
                let principal = admission.principal.as_ref();
                state
                    .auditor
                    .record(NewAuditEvent {
                        at: chrono::Utc::now(),
                        actor_id: principal.map(|p| p.user_id).or(note.actor_id),
                        actor_email: principal.map(|p| p.email.clone()).unwrap_or(note.actor_email),
                        rpc: path,
                        target: note.target,
                        outcome: outcome(&response),
                        event: note.event,
                        latency_us: started.elapsed().as_micros() as i64,
                        peer,
                    })
                    .await;
            }
            Ok(response)
        })
    }
}

impl AuthState {
    async fn admit(&self, access: Access, bearer: Option<&str>, peer: &str) -> Admission {
        let refuse = |error: ApiError| Admission {
            principal: None,
            refusal: Some(error.into()),
        };
        if access == Access::Public {
            return match self.guard.admit(peer, None, None).await {
                Ok(Some(limited)) => refuse(exhausted(limited)),
                _ => Admission {
                    principal: None,
                    refusal: None,
                },
            };
        }
        let Some(token) = bearer else {
            return refuse(
                ApiError::Unauthenticated("a bearer token is required (authorization: Bearer <access token>)".into())
                    .because("TOKEN_MISSING"),
            );
        };
        let claims = match self.tokens.verify(token) {
            Ok(claims) => claims,
            Err(error) => {
                tracing::debug!(%error, "token refused");
                return refuse(ApiError::Unauthenticated("invalid or expired token".into()).because("TOKEN_INVALID"));
            }
        };
        let user = match super::live_account(&self.pool, claims.user_id, claims.session_id).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return refuse(
                    ApiError::Unauthenticated("the session was revoked or the account deactivated".into()).because("SESSION_REVOKED"),
                );
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "cannot load the caller's account");
                return refuse(ApiError::Unavailable("cannot check the caller's account right now".into()));
            }
        };
        let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
        let limit = match role {
            Role::Admin => self.guard.config.rate_per_minute_admin,
            Role::Member => self.guard.config.rate_per_minute_member,
            Role::Viewer => self.guard.config.rate_per_minute_viewer,
        };
        let principal = Principal {
            user_id: user.id,
            email: user.email,
            email_verified: user.email_verified_at.is_some(),
            role,
            session_id: claims.session_id,
            jti: claims.jti,
            token_expires_at: claims.expires_at,
        };
        let refusal = match self.guard.admit(peer, Some((principal.user_id, limit)), Some(claims.jti)).await {
            Err(TokenCheck::Revoked) => {
                return refuse(ApiError::Unauthenticated("the token was revoked".into()).because("TOKEN_REVOKED"));
            }
            Err(TokenCheck::Unavailable) => {
                return refuse(ApiError::Unavailable("cannot check token revocation right now".into()));
            }
            Ok(Some(limited)) => Some(exhausted(limited).into()),
            Ok(None) if !access.allows(role) => Some(
                ApiError::PermissionDenied(format!("this call requires the {access:?} role").to_lowercase())
                    .because("ROLE_REQUIRED")
                    .into(),
            ),
            Ok(None) if access == Access::VerifiedMember && self.guard.config.require_email_verification && !principal.email_verified => {
                Some(
                    ApiError::FailedPrecondition(
                        "verify your email first (the link of the email Register sent; ResendVerification sends another)".into(),
                    )
                    .because("EMAIL_NOT_VERIFIED")
                    .into(),
                )
            }
            Ok(None) => None,
        };
        Admission {
            principal: Some(principal),
            refusal,
        }
    }
}

/// RESOURCE_EXHAUSTED with RetryInfo.
pub fn exhausted(limited: Limited) -> ApiError {
    ApiError::ResourceExhausted {
        message: format!("rate limit exceeded; retry in {}s", limited.retry_after.as_secs().max(1)),
        retry_after: limited.retry_after,
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// The gRPC code name of a response: from its headers (a trailers-only error
/// response) or OK (a normal response carries its status in trailers).
fn outcome(response: &http::Response<Body>) -> String {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32);
    code_name(code)
}

/// SCREAMING_SNAKE name of a code, as in the gRPC spec ("INVALID_ARGUMENT").
pub fn code_name(code: Code) -> String {
    let camel = format!("{code:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

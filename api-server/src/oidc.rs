//! Sign-in with an OpenID Connect provider, in domain terms: the
//! authorization-code flow with PKCE through the `openidconnect` crate.
//! [`Oidc::start`] discovers the provider (cached ten minutes), makes the
//! authorization URL with a fresh state, nonce and PKCE verifier, and keeps
//! them in `oidc_logins`; [`Oidc::finish`] takes that row back by its state
//! (once: a replayed state finds nothing), exchanges the code with the
//! verifier, and validates the ID token: issuer, audience (no other
//! audience is trusted), expiry, nonce and the signature against the
//! provider's published keys. The identity it yields is linked to an account
//! by `Accounts::identity_account`.
//!
//! The HTTP calls go through folio's reqwest, redirects off, bounded by a
//! timeout.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use chrono::Utc;
use folio_auth::{
    config::{OidcProvider, ProviderKind},
    refresh,
};
use folio_db::{
    self as db,
    models::oidc::{self as rows, PendingLogin},
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse as _,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
};
use tokio::sync::Mutex;

use crate::error::{ApiError, ApiResult};

/// How long a sign-in may take between start and finish.
const LOGIN_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// How long a provider's discovered metadata and keys are reused.
const METADATA_TTL: Duration = Duration::from_secs(600);

/// The configured providers and what folio knows of them.
pub struct Oidc {
    providers: Vec<OidcProvider>,
    http: Http,
    pool: db::Pool,
    metadata: Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc").field("providers", &self.providers).finish()
    }
}

/// A sign-in begun: where to send the user, and the state that comes back.
#[derive(Debug, Clone)]
pub struct Started {
    pub authorization_url: String,
    pub state: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

impl Oidc {
    pub fn new(providers: Vec<OidcProvider>, pool: db::Pool) -> anyhow::Result<Oidc> {
        folio_core::startup::install_tls_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Oidc {
            providers,
            http: Http(http),
            pool,
            metadata: Mutex::default(),
        })
    }

    /// The provider named `name`, or NOT_FOUND naming the field.
    fn provider(&self, name: &str) -> ApiResult<&OidcProvider> {
        self.providers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ApiError::invalid("provider", format!("{name:?} is not a configured provider")))
    }

    /// The names of the configured providers.
    pub fn names(&self) -> Vec<String> {
        self.providers.iter().map(|p| p.name.clone()).collect()
    }

    /// Begins a sign-in with `provider`, coming back to `redirect_uri`.
    pub async fn start(&self, provider: &str, redirect_uri: &str) -> ApiResult<Started> {
        let config = self.provider(provider)?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| ApiError::invalid("redirect_uri", e.to_string()))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let scopes = config.scopes.iter().map(|scope| Scope::new(scope.clone()));
        let (url, state, nonce) = match config.kind {
            ProviderKind::Oidc => {
                let client = self.client(config).await?.set_redirect_uri(redirect);
                let (url, state, nonce) = client
                    .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
                    .set_pkce_challenge(challenge)
                    .add_scopes(scopes)
                    .url();
                (url, state, nonce.secret().clone())
            }
            ProviderKind::Oauth2 => {
                let (url, state) = oauth2_client(config)?
                    .set_redirect_uri(redirect)
                    .authorize_url(CsrfToken::new_random)
                    .set_pkce_challenge(challenge)
                    .add_scopes(scopes)
                    .url();
                (url, state, String::new())
            }
        };
        let now = Utc::now();
        let login = PendingLogin {
            state_hash: refresh::hash(state.secret()),
            provider: config.name.clone(),
            nonce,
            pkce_verifier: verifier.secret().clone(),
            redirect_uri: redirect_uri.to_owned(),
            created_at: now,
            expires_at: now + LOGIN_TTL,
        };
        let mut conn = self.pool.get().await?;
        rows::begin(&mut conn, &login).await?;
        Ok(Started {
            authorization_url: url.to_string(),
            state: state.secret().clone(),
            expires_at: login.expires_at,
        })
    }

    /// Finishes the sign-in of `state` with the provider's `code`, and says
    /// who signed in. The state works once.
    pub async fn finish(&self, state: &str, code: &str) -> ApiResult<Identity> {
        let mut conn = self.pool.get().await?;
        let login = rows::take(&mut conn, &refresh::hash(state)).await?.ok_or_else(|| {
            ApiError::Unauthenticated("the sign-in's state is unknown, used or expired; start again".into()).because("OIDC_STATE_UNKNOWN")
        })?;
        drop(conn);
        let config = self.provider(&login.provider)?;
        let redirect = RedirectUrl::new(login.redirect_uri.clone()).map_err(|e| ApiError::Internal(e.into()))?;
        let code = AuthorizationCode::new(code.to_owned());
        let verifier = PkceCodeVerifier::new(login.pkce_verifier.clone());
        match config.kind {
            ProviderKind::Oidc => self.finish_oidc(config, redirect, code, verifier, &login.nonce).await,
            ProviderKind::Oauth2 => self.finish_oauth2(config, redirect, code, verifier).await,
        }
    }

    /// The ID token's identity, once validated.
    async fn finish_oidc(
        &self,
        config: &OidcProvider,
        redirect: RedirectUrl,
        code: AuthorizationCode,
        verifier: PkceCodeVerifier,
        nonce: &str,
    ) -> ApiResult<Identity> {
        let client = self.client(config).await?.set_redirect_uri(redirect);
        let tokens = client
            .exchange_code(code)
            .map_err(|e| refused("the provider has no token endpoint", &e))?
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| refused("the provider refused the code", &e))?;
        let id_token = tokens.id_token().ok_or_else(|| refused("the provider sent no ID token", &"none"))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
            .map_err(|e| {
                tracing::warn!(provider = %config.name, error = %e, "an ID token was refused");
                ApiError::Unauthenticated(format!("the provider's ID token is not valid: {e}")).because("OIDC_ID_TOKEN_INVALID")
            })?;
        Ok(Identity {
            provider: config.name.clone(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()),
        })
    }

    /// The user-info URL's identity, with the access token the code buys.
    async fn finish_oauth2(
        &self,
        config: &OidcProvider,
        redirect: RedirectUrl,
        code: AuthorizationCode,
        verifier: PkceCodeVerifier,
    ) -> ApiResult<Identity> {
        let tokens = oauth2_client(config)?
            .set_redirect_uri(redirect)
            .exchange_code(code)
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| refused("the provider refused the code", &e))?;
        let info: serde_json::Value = self
            .http
            .0
            .get(&config.userinfo_url)
            .bearer_auth(oauth2::TokenResponse::access_token(&tokens).secret())
            .header("accept", "application/json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| refused("the user-info URL did not answer", &e))?
            .json()
            .await
            .map_err(|e| refused("the user-info URL answered no JSON", &e))?;
        let subject = match &info[&config.subject_field] {
            serde_json::Value::String(id) => id.clone(),
            serde_json::Value::Number(id) => id.to_string(),
            _ => return Err(refused("the user info names no user", &config.subject_field)),
        };
        Ok(Identity {
            provider: config.name.clone(),
            subject,
            email: info[&config.email_field].as_str().map(str::to_owned),
            email_verified: info["email_verified"].as_bool().unwrap_or(config.trust_email),
            name: info["name"].as_str().map(str::to_owned),
        })
    }

    /// A client of `config`'s provider, from its (cached) discovery.
    async fn client(
        &self,
        config: &OidcProvider,
    ) -> ApiResult<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        let metadata = self.metadata(config).await?;
        let secret = (!config.client_secret.is_empty()).then(|| ClientSecret::new(config.client_secret.clone()));
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            secret,
        ))
    }

    async fn metadata(&self, config: &OidcProvider) -> ApiResult<CoreProviderMetadata> {
        let mut cache = self.metadata.lock().await;
        if let Some((at, metadata)) = cache.get(&config.name)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(config.issuer.clone()).map_err(|e| ApiError::Internal(e.into()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http).await.map_err(|e| {
            tracing::warn!(provider = %config.name, error = %e, "OpenID discovery failed");
            ApiError::Unavailable(format!("the identity provider {:?} cannot be reached: {e}", config.name))
        })?;
        cache.insert(config.name.clone(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }
}

/// A plain OAuth 2 client of `config`'s endpoints.
fn oauth2_client(
    config: &OidcProvider,
) -> ApiResult<
    oauth2::basic::BasicClient<
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
> {
    let url = |text: &str| oauth2::AuthUrl::new(text.to_owned()).map_err(|e| ApiError::Internal(e.into()));
    let token = oauth2::TokenUrl::new(config.token_url.clone()).map_err(|e| ApiError::Internal(e.into()))?;
    let mut client = oauth2::basic::BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_auth_uri(url(&config.authorize_url)?)
        .set_token_uri(token);
    if !config.client_secret.is_empty() {
        client = client.set_client_secret(ClientSecret::new(config.client_secret.clone()));
    }
    Ok(client)
}

/// UNAUTHENTICATED for a sign-in the provider did not complete.
fn refused(what: &str, error: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(%error, "{what}");
    ApiError::Unauthenticated(format!("{what}: {error}")).because("OIDC_CODE_REFUSED")
}

/// folio's reqwest as openidconnect's HTTP client.
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send + 'c>>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?.to_vec();
            Ok(answer.body(body).expect("a status and headers taken from a response"))
        })
    }
}

//! The connection to one folio server and the signed-in session on it. Every
//! authenticated call goes through [`Client::call`], which refreshes the
//! access token before it expires, and once more when the server answers
//! UNAUTHENTICATED (a revoked or rejected token): it calls AuthService Refresh
//! with the saved refresh token, saves the new pair and retries the call once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use folio_proto::v1::{RefreshRequest, Session, auth_service_client::AuthServiceClient};
use tokio::sync::Mutex;
use tonic::{
    Code, Status,
    metadata::{Ascii, MetadataValue},
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

use crate::{
    credentials::{Saved, Store},
    exit::Error,
};

/// Refresh ahead of expiry by this much, so a call does not race the clock;
/// by half the token's lifetime when that is shorter, so a short-lived token
/// is still used rather than refreshed before every call.
const REFRESH_AHEAD: Duration = Duration::from_secs(30);

/// A channel that sends `authorization: Bearer <token>` on every call.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Adds the bearer token to each request.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// `http://` is assumed when the URL names no scheme.
pub fn normalize_server(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Connects to `server`; an unreachable server is UNAVAILABLE.
pub async fn connect(server: &str) -> Result<Channel, Error> {
    let endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| Error::local(format!("bad server URL {server}: {e}")))?
        .connect_timeout(Duration::from_secs(5));
    endpoint.connect().await.map_err(|e| {
        let mut message = format!("cannot reach {server}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Error::Status(Status::unavailable(message))
    })
}

/// The saved form of a session the server returned.
pub fn saved_from(session: &Session, email: &str) -> Saved {
    let time = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
    };
    Saved {
        email: session.user.as_ref().map_or_else(|| email.to_owned(), |u| u.email.clone()),
        access_token: session.access_token.clone(),
        access_expires_at: time(&session.access_expires_at),
        refresh_token: session.refresh_token.clone(),
        refresh_expires_at: time(&session.refresh_expires_at),
        saved_at: Some(Utc::now()),
    }
}

/// A signed-in connection.
pub struct Client {
    channel: Channel,
    server: String,
    store: Store,
    /// The session in use; a refresh replaces it under the lock, so
    /// concurrent calls (one watch per uploaded document) refresh once.
    session: Mutex<Saved>,
}

impl Client {
    /// Connects with the session saved for `server`; UNAUTHENTICATED when
    /// there is none.
    pub async fn signed_in(server: &str, store: Store) -> Result<Self, Error> {
        let saved = store.load(server)?.ok_or_else(|| {
            Error::Status(Status::unauthenticated(format!(
                "not logged in to {server}: run `folioctl login` (credentials: {})",
                store.path().display()
            )))
        })?;
        let channel = connect(server).await?;
        Ok(Client {
            channel,
            server: server.to_owned(),
            store,
            session: Mutex::new(saved),
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Runs `call` with a channel carrying a valid access token, refreshing
    /// the session and retrying once when the server answers UNAUTHENTICATED.
    pub async fn call<T>(&self, call: impl AsyncFn(Authed) -> Result<tonic::Response<T>, Status>) -> Result<T, Error> {
        let token = self.access_token().await?;
        match call(self.authed(&token)?).await {
            Err(status) if status.code() == Code::Unauthenticated => {
                let token = self.refresh(&token).await?;
                Ok(call(self.authed(&token)?).await?.into_inner())
            }
            other => Ok(other?.into_inner()),
        }
    }

    /// The access token to use now: the saved one, or a fresh one when it
    /// expires within `REFRESH_AHEAD` (or half its lifetime).
    pub async fn access_token(&self) -> Result<String, Error> {
        let (token, expires, saved) = {
            let session = self.session.lock().await;
            (session.access_token.clone(), session.access_expires_at, session.saved_at)
        };
        let mut ahead = chrono::Duration::from_std(REFRESH_AHEAD).unwrap_or_default();
        if let (Some(expires), Some(saved)) = (expires, saved) {
            ahead = ahead.min((expires - saved) / 2);
        }
        match expires {
            Some(at) if at - ahead <= Utc::now() => self.refresh(&token).await,
            _ => Ok(token),
        }
    }

    /// Replaces the session whose access token was `stale` with a refreshed
    /// one; if another call already did, uses its token.
    pub async fn refresh(&self, stale: &str) -> Result<String, Error> {
        let mut session = self.session.lock().await;
        if session.access_token != stale {
            return Ok(session.access_token.clone());
        }
        let refreshed = AuthServiceClient::new(self.channel.clone())
            .refresh(RefreshRequest {
                refresh_token: session.refresh_token.clone(),
            })
            .await
            .map_err(|status| {
                Error::Status(Status::new(
                    status.code(),
                    format!("the session expired or was revoked ({}): run `folioctl login`", status.message()),
                ))
            })?
            .into_inner();
        let saved = saved_from(&refreshed, &session.email);
        self.store.save(&self.server, Some(saved.clone()))?;
        *session = saved;
        Ok(session.access_token.clone())
    }

    /// A channel carrying `token`.
    pub fn authed(&self, token: &str) -> Result<Authed, Error> {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::local("the saved access token is not ASCII: run `folioctl login`"))?;
        Ok(InterceptedService::new(self.channel.clone(), Bearer(value)))
    }

    /// Forgets the saved session.
    pub fn forget(&self) -> Result<(), Error> {
        self.store.save(&self.server, None)
    }
}

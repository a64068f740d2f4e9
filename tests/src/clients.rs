//! Talking to an api-server as a test does: [`ApiHandle`] (an api-server in
//! the test process) hands out typed tonic clients, signed in with an
//! [`Authed`] channel that adds a [`Bearer`] token, and logs in or registers.
//! Starting, awaiting and stopping that server is `processes`' business.

use std::net::SocketAddr;

use folio_proto::v1::{
    BeginTotpEnrollmentRequest, ConfirmTotpRequest, LoginRequest, RegisterRequest, Session, auth_service_client::AuthServiceClient,
    system_service_client::SystemServiceClient, user_service_client::UserServiceClient,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{metadata::MetadataValue, service::interceptor::InterceptedService, transport::Channel};

use crate::environment::{ADMIN_EMAIL, ADMIN_PASSWORD};

/// An api-server running in the test process.
pub struct ApiHandle {
    pub addr: SocketAddr,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) task: JoinHandle<anyhow::Result<()>>,
}

impl ApiHandle {
    /// The server's URL for tonic clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to api-server")
    }

    /// A SystemService client signed in as the bootstrap admin.
    pub async fn system(&self) -> SystemServiceClient<Authed> {
        let token = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token;
        SystemServiceClient::new(self.authed(&token).await)
    }

    /// An AuthService client without a token.
    pub async fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel().await)
    }

    /// An AuthService client with `token`.
    pub async fn auth_as(&self, token: &str) -> AuthServiceClient<Authed> {
        AuthServiceClient::new(self.authed(token).await)
    }

    /// The account `token` signs in as, panicking when the server refuses it.
    pub async fn who_am_i(&self, token: &str) -> folio_proto::v1::User {
        self.auth_as(token)
            .await
            .who_am_i(folio_proto::v1::WhoAmIRequest {})
            .await
            .expect("WhoAmI")
            .into_inner()
    }

    /// A UserService client with `token`.
    pub async fn users_as(&self, token: &str) -> UserServiceClient<Authed> {
        UserServiceClient::new(self.authed(token).await)
    }

    /// A UserService client signed in as the bootstrap admin.
    pub async fn admin_users(&self) -> UserServiceClient<Authed> {
        let token = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token;
        self.users_as(&token).await
    }

    /// The audit log's successful rows of `rpc` (a full method name, or
    /// "retention"), newest first, read as the bootstrap admin.
    pub async fn audit_of(&self, rpc: &str) -> Vec<folio_proto::v1::AuditEvent> {
        self.admin_users()
            .await
            .list_audit_events(folio_proto::v1::ListAuditEventsRequest {
                rpc: rpc.into(),
                outcome: "OK".into(),
                ..Default::default()
            })
            .await
            .expect("the audit log")
            .into_inner()
            .events
    }

    /// Logs in, panicking on failure.
    pub async fn login(&self, email: &str, password: &str) -> Session {
        self.auth()
            .await
            .login(LoginRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .unwrap_or_else(|status| panic!("login as {email} failed: {status:?}"))
            .into_inner()
    }

    /// Registers a new member with a random email, returning the session.
    pub async fn register_member(&self) -> Session {
        let email = format!("member-{}@folio.test", uuid::Uuid::new_v4().simple());
        self.auth()
            .await
            .register(RegisterRequest {
                email,
                password: "a member's passphrase".into(),
                display_name: "A Member".into(),
            })
            .await
            .expect("register")
            .into_inner()
    }

    /// Turns a second factor on for the holder of `token` (enrolling a secret
    /// and confirming it with its current code); the secret.
    pub async fn turn_on_mfa(&self, token: &str) -> String {
        let mut auth = self.auth_as(token).await;
        let secret = auth
            .begin_totp_enrollment(BeginTotpEnrollmentRequest {})
            .await
            .expect("BeginTotpEnrollment")
            .into_inner()
            .secret;
        auth.confirm_totp(ConfirmTotpRequest {
            code: crate::authenticator::totp(&secret, 0),
        })
        .await
        .expect("ConfirmTotp");
        secret
    }

    /// A channel that sends `authorization: Bearer <token>` on every call.
    pub async fn authed(&self, token: &str) -> Authed {
        InterceptedService::new(self.channel().await, Bearer::new(token))
    }
}

/// A channel that adds a bearer token to every call.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Bearer(format!("Bearer {token}").parse().expect("token is ASCII"))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

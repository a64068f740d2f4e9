//! The harness behind folio's end-to-end suite.
//!
//! Every test gets its own [`TestEnv`]: a Postgres database cloned from a
//! migrated template, its own RabbitMQ name prefix and Redis key prefix, so tests
//! run in parallel (and beside earlier runs' leftovers) on the machine's real
//! servers. Servers bind port 0. The env cleans up after itself when dropped.
//!
//! Servers run in-process ([`TestEnv::spawn_api`], [`TestEnv::spawn_worker`]) or
//! as the real binaries ([`TestEnv::command`]) where exit codes and signals are
//! what is under test. [`TcpProxy`] stands between a server and a dependency so a
//! test can cut the link and restore it. [`models`] finds the real models the
//! model tests run; [`relevance`] the real documents and the search relevance measure;
//! [`s3`] runs an S3-compatible server for the `s3://` blob store.

pub mod models;
pub mod proxy;
pub mod relevance;
pub mod s3;

use std::{
    collections::HashMap,
    future::Future,
    hash::{DefaultHasher, Hash as _, Hasher as _},
    net::SocketAddr,
    path::PathBuf,
    time::Duration,
};

use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use folio_auth::tokens::TokenKeys;
use folio_core::{config::Config, queue::Topology};
use folio_db as db;
use folio_proto::v1::{
    LoginRequest, RegisterRequest, Session, auth_service_client::AuthServiceClient, system_service_client::SystemServiceClient,
    user_service_client::UserServiceClient,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;
use tonic::{metadata::MetadataValue, service::interceptor::InterceptedService};

pub use proxy::TcpProxy;

/// The machine's servers, overridable for other set-ups.
fn postgres_base() -> String {
    std::env::var("FOLIO_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}
/// The RabbitMQ URL tests use.
pub fn amqp_url() -> String {
    std::env::var("FOLIO_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}
/// The Redis URL tests use.
pub fn redis_url() -> String {
    std::env::var("FOLIO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Where a test's blobs go.
fn blob_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join("folio-test-blobs").join(id)
}

/// The bootstrap admin every test env configures.
pub const ADMIN_EMAIL: &str = "admin@folio.test";
pub const ADMIN_PASSWORD: &str = "test admin passphrase";

/// Serialises template creation and database cloning across test processes.
const TEMPLATE_LOCK: i64 = 0x666f_6c69_6f74;

/// One test's private slice of the shared servers.
pub struct TestEnv {
    /// The variables a folio process of this test runs with.
    pub vars: HashMap<String, String>,
    /// The test's database name.
    pub database: String,
    cleaned: bool,
}

impl TestEnv {
    /// Creates the database (from the migrated template) and the prefixes.
    pub async fn new() -> Self {
        init_tracing();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let database = format!("folio_test_{id}");
        let template = ensure_template().await;
        let mut admin = admin_connection().await;
        lock(&mut admin).await;
        diesel::sql_query(format!("CREATE DATABASE {database} TEMPLATE {template}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        unlock(&mut admin).await;

        let vars: HashMap<String, String> = [
            ("DATABASE_URL", format!("{}/{database}", postgres_base())),
            ("AMQP_URL", amqp_url()),
            ("REDIS_URL", redis_url()),
            ("FOLIO_AMQP_PREFIX", format!("ft.{id}")),
            ("FOLIO_REDIS_PREFIX", format!("ft:{id}:")),
            ("FOLIO_GRPC_ADDR", "127.0.0.1:0".into()),
            ("FOLIO_DB_POOL_SIZE", "8".into()),
            ("FOLIO_STARTUP_TIMEOUT_SECS", "10".into()),
            ("FOLIO_SHUTDOWN_GRACE_SECS", "5".into()),
            ("FOLIO_HEARTBEAT_SECS", "1".into()),
            ("FOLIO_RELAY_POLL_MS", "100".into()),
            ("FOLIO_HEALTH_POLL_MS", "100".into()),
            ("FOLIO_RETRY_BASE_MS", "200".into()),
            ("FOLIO_MAX_ATTEMPTS", "3".into()),
            ("FOLIO_TOKEN_KEYS", TokenKeys::generate_secret()),
            ("FOLIO_BLOB_URL", format!("file://{}", blob_dir(&id).display())),
            ("FOLIO_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("FOLIO_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        TestEnv {
            vars,
            database,
            cleaned: false,
        }
    }

    /// Sets a variable for the processes this env starts from now on.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(name.to_owned(), value.into());
    }

    /// The configuration the variables describe.
    pub fn config(&self) -> Config {
        Config::from_lookup(|name| self.vars.get(name).cloned()).expect("test configuration")
    }

    /// The api-server's configuration the variables describe.
    pub fn api_config(&self) -> folio_api::ApiConfig {
        folio_api::ApiConfig::from_lookup(|name| self.vars.get(name).cloned()).expect("test configuration")
    }

    /// The test's exchange and queue names.
    pub fn topology(&self) -> Topology {
        Topology::new(&self.config())
    }

    /// A pool on the test's database.
    pub fn pool(&self) -> db::Pool {
        db::pool(&self.vars["DATABASE_URL"], 4).expect("pool")
    }

    /// Starts an api-server in this process, on port 0.
    pub async fn spawn_api(&self) -> ApiHandle {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.api_config();
        let task = tokio::spawn(folio_api::run(config, listener, async {
            let _ = stopped.await;
        }));
        let handle = ApiHandle {
            addr,
            stop: Some(stop),
            task,
        };
        handle.wait_serving().await;
        handle
    }

    /// Starts a worker in this process.
    pub fn spawn_worker(&self) -> WorkerHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(folio_worker::run(self.config(), async {
            let _ = stopped.await;
        }));
        WorkerHandle { stop: Some(stop), task }
    }

    /// A command for one of folio's binaries with this env's variables (and no
    /// others from the test process, so nothing leaks in).
    pub fn command(&self, binary: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary_path(binary));
        command
            .env_clear()
            .envs(&self.vars)
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        // A `.env` in the working directory would leak settings in: run elsewhere.
        command.current_dir(std::env::temp_dir()).kill_on_drop(true);
        command
    }

    /// Removes the database, queues, exchanges and Redis keys.
    pub async fn cleanup(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        let topology = self.topology();
        if let Ok(connection) = lapin::Connection::connect(&amqp_url(), Default::default()).await
            && let Ok(channel) = connection.create_channel().await
        {
            for queue in topology.queues() {
                let _ = channel.queue_delete(queue.into(), Default::default()).await;
            }
            for exchange in topology.exchanges() {
                let _ = channel.exchange_delete(exchange.into(), Default::default()).await;
            }
            let _ = connection.close(200, "test done".into()).await;
        }
        if let Ok(client) = redis::Client::open(redis_url())
            && let Ok(mut redis) = client.get_multiplexed_async_connection().await
        {
            let pattern = format!("{}*", self.vars["FOLIO_REDIS_PREFIX"]);
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut redis).await.unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut redis).await;
            }
        }
        if let Some(dir) = self.vars.get("FOLIO_BLOB_URL").and_then(|url| url.strip_prefix("file://")) {
            let _ = std::fs::remove_dir_all(dir);
        }
        let mut admin = admin_connection().await;
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database))
            .execute(&mut admin)
            .await;
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A test that panicked did not reach `cleanup`; do it on a thread of its
        // own, since the test's runtime may be gone or busy.
        let mut env = TestEnv {
            vars: self.vars.clone(),
            database: self.database.clone(),
            cleaned: false,
        };
        self.cleaned = true;
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(env.cleanup());
        })
        .join();
    }
}

/// An api-server running in the test process.
pub struct ApiHandle {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
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

    /// A UserService client with `token`.
    pub async fn users_as(&self, token: &str) -> UserServiceClient<Authed> {
        UserServiceClient::new(self.authed(token).await)
    }

    /// A UserService client signed in as the bootstrap admin.
    pub async fn admin_users(&self) -> UserServiceClient<Authed> {
        let token = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token;
        self.users_as(&token).await
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

    /// A channel that sends `authorization: Bearer <token>` on every call.
    pub async fn authed(&self, token: &str) -> Authed {
        InterceptedService::new(self.channel().await, Bearer::new(token))
    }

    /// Waits until health says SERVING.
    pub async fn wait_serving(&self) {
        let url = self.url();
        eventually(Duration::from_secs(20), "api-server SERVING", || {
            let url = url.clone();
            async move { (health_status(&url, "").await == Some(tonic_health::pb::health_check_response::ServingStatus::Serving)).then_some(()) }
        })
        .await;
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("api task")
    }
}

/// Uploads `bytes` as `name` through the streaming `UploadDocument`, in 1 MiB
/// messages, panicking on failure.
pub async fn upload_document(
    client: &mut folio_proto::v1::document_service_client::DocumentServiceClient<Authed>,
    name: &str,
    bytes: &[u8],
) -> folio_proto::v1::Document {
    use folio_proto::v1::{DocumentMetadata, UploadDocumentRequest, upload_document_request::Part};
    let mut requests = vec![UploadDocumentRequest {
        part: Some(Part::Metadata(DocumentMetadata {
            filename: name.into(),
            ..Default::default()
        })),
    }];
    requests.extend(bytes.chunks(1 << 20).map(|c| UploadDocumentRequest {
        part: Some(Part::Chunk(c.to_vec())),
    }));
    client
        .upload_document(tokio_stream::iter(requests))
        .await
        .expect("upload")
        .into_inner()
        .document
        .expect("a document")
}

/// Creates a document from `content` with `CreateDocument`, panicking on
/// failure.
pub async fn create_document(
    client: &mut folio_proto::v1::document_service_client::DocumentServiceClient<Authed>,
    name: &str,
    labels: &[&str],
    content: &[u8],
) -> folio_proto::v1::Document {
    use folio_proto::v1::{CreateDocumentRequest, DocumentMetadata};
    client
        .create_document(CreateDocumentRequest {
            metadata: Some(DocumentMetadata {
                filename: name.into(),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                ..Default::default()
            }),
            content: content.to_vec(),
        })
        .await
        .unwrap_or_else(|status| panic!("create {name}: {status:?}"))
        .into_inner()
        .document
        .expect("a document")
}

/// Polls `GetDocument` until document `id` is in `wanted`, for up to
/// `timeout`. Panics at once if it fails while something else is wanted.
pub async fn wait_for_state(
    client: &folio_proto::v1::document_service_client::DocumentServiceClient<Authed>,
    id: &str,
    wanted: folio_proto::v1::DocumentState,
    timeout: Duration,
) -> folio_proto::v1::Document {
    use folio_proto::v1::{DocumentState, GetDocumentRequest};
    eventually(timeout, &format!("document {id} {wanted:?}"), || {
        let mut client = client.clone();
        let id = id.to_owned();
        async move {
            let document = client.get_document(GetDocumentRequest { id }).await.ok()?.into_inner();
            if wanted != DocumentState::Failed {
                assert_ne!(
                    document.state(),
                    DocumentState::Failed,
                    "{} failed: {}",
                    document.filename,
                    document.error_message
                );
            }
            (document.state() == wanted).then_some(document)
        }
    })
    .await
}

/// A folio-api process (the built binary) serving on a free port.
pub struct ApiProcess {
    pub child: tokio::process::Child,
    pub url: String,
    pub channel: Channel,
    /// The bootstrap admin's access token.
    pub admin_token: String,
}

/// Starts folio-api as its own process with `env`'s settings, waits until it
/// is SERVING and logs in as the bootstrap admin. The benchmarks use it.
pub async fn spawn_api_process(env: &TestEnv) -> ApiProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = env
        .command("folio-api")
        .env("FOLIO_GRPC_ADDR", &addr)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("folio-api");
    let url = format!("http://{addr}");
    let channel = loop {
        if health_status(&url, "").await == Some(tonic_health::pb::health_check_response::ServingStatus::Serving) {
            break Channel::from_shared(url.clone()).expect("url").connect().await.expect("connect");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let admin_token = AuthServiceClient::new(channel.clone())
        .login(LoginRequest {
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .expect("admin login")
        .into_inner()
        .access_token;
    ApiProcess {
        child,
        url,
        channel,
        admin_token,
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

/// A worker running in the test process.
pub struct WorkerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl WorkerHandle {
    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("worker task")
    }
}

/// The health of `service` ("" for the server), or None if unreachable.
pub async fn health_status(url: &str, service: &str) -> Option<tonic_health::pb::health_check_response::ServingStatus> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = Channel::from_shared(url.to_owned()).ok()?.connect().await.ok()?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service: service.into() })
        .await
        .ok()?;
    Some(response.into_inner().status())
}

/// The fields a status's BadRequest details name, in order (none without
/// details).
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Polls `probe` every 50 ms until it returns Some, panicking with `what` after
/// `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Messages ready on `queue` (a passive declare; the queue must exist).
pub async fn ready_messages(queue: &str) -> u32 {
    let connection = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, Default::default())
        .await
        .expect("the queue exists");
    let _ = connection.close(200, "done".into()).await;
    declared.message_count()
}

/// A RabbitMQ connection and a channel with publisher confirms, for a test
/// that publishes jobs by hand (keep the connection while using the channel).
pub async fn publisher() -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("publisher confirms");
    (connection, channel)
}

/// About `words` words of varied prose in paragraphs: a document of many
/// chunks.
pub fn prose(words: usize) -> Vec<u8> {
    let vocabulary = [
        "heron", "marsh", "reed", "water", "rail", "tide", "estuary", "mud", "flight", "nest", "wader", "curlew",
    ];
    let mut out = String::with_capacity(words * 8);
    for i in 0..words {
        out.push_str(vocabulary[(i * 7 + i / 13) % vocabulary.len()]);
        out.push_str(if i % 60 == 59 { ".\n\n" } else { " " });
    }
    out.into_bytes()
}

/// Up to 1,000 of a document's events, oldest first.
pub async fn document_events(
    client: &folio_proto::v1::document_service_client::DocumentServiceClient<Authed>,
    id: &str,
) -> Vec<folio_proto::v1::DocumentEvent> {
    client
        .clone()
        .list_document_events(folio_proto::v1::ListDocumentEventsRequest {
            document_id: id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListDocumentEvents")
        .into_inner()
        .events
}

/// Waits until the relay has marked every outbox row sent. The mark commits
/// just after the broker's confirm, so a worker can record a job a moment
/// before its row reads as sent.
pub async fn outbox_drained(pool: &db::Pool) {
    eventually(Duration::from_secs(10), "the outbox drained", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            (db::models::outbox::count_unsent(&mut conn).await.ok()? == 0).then_some(())
        }
    })
    .await;
}

/// The path of a workspace binary, built by `cargo build --bins` (scripts/test
/// does that before the suite).
pub fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // Test executables live in target/<profile>/deps, bench binaries in target/<profile>.
    let mut dir = exe.parent().expect("executable directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target directory");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first (scripts/test does)",
        path.display()
    );
    path
}

async fn admin_connection() -> AsyncPgConnection {
    AsyncPgConnection::establish(&format!("{}/postgres", postgres_base()))
        .await
        .expect("connect to Postgres as admin")
}

async fn lock(admin: &mut AsyncPgConnection) {
    diesel::sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .execute(admin)
        .await
        .expect("advisory lock");
}

async fn unlock(admin: &mut AsyncPgConnection) {
    diesel::sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .execute(admin)
        .await
        .expect("advisory unlock");
}

/// The name of a database migrated to the current migrations, created once per
/// set of migrations and reused by every later test and run.
async fn ensure_template() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut hasher = DefaultHasher::new();
    let mut entries: Vec<PathBuf> = walk(&dir);
    entries.sort();
    for path in entries {
        path.strip_prefix(&dir).expect("inside migrations").hash(&mut hasher);
        std::fs::read(&path).expect("read migration").hash(&mut hasher);
    }
    let template = format!("folio_tpl_{:016x}", hasher.finish());

    let mut admin = admin_connection().await;
    lock(&mut admin).await;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let exists: Exists = diesel::sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{template}') AS exists"
    ))
    .get_result(&mut admin)
    .await
    .expect("look for template");
    if !exists.exists {
        diesel::sql_query(format!("CREATE DATABASE {template}"))
            .execute(&mut admin)
            .await
            .expect("create template");
        db::migrate(&format!("{}/{template}", postgres_base()))
            .await
            .expect("migrate template");
    }
    unlock(&mut admin).await;
    template
}

fn walk(dir: &PathBuf) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read migrations directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,lapin=warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Small helpers the benchmark binaries share.
pub mod bench {
    use std::time::Duration;

    /// The `p` quantile (0 to 1) of sorted durations.
    pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }

    /// Waits for every caller task and returns all their latencies, sorted
    /// (for [`percentile`]).
    pub async fn gather_latencies(callers: impl IntoIterator<Item = tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
        let mut latencies: Vec<Duration> = futures_util::future::join_all(callers)
            .await
            .into_iter()
            .flat_map(|caller| caller.expect("a caller task panicked"))
            .collect();
        latencies.sort();
        latencies
    }

    /// A duration as "12.3 ms".
    pub fn ms(d: Duration) -> String {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }

    /// A KiB field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), 0 if unknown.
    pub fn status_kib(pid: u32, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

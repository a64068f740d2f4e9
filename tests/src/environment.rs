//! Each test's private slice of the shared Postgres, RabbitMQ and Redis: a
//! database cloned from a template migrated once per set of migrations, a
//! RabbitMQ name prefix and a Redis key prefix of its own, and the cleanup
//! that removes them (also when the test panicked).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash as _, Hasher as _},
    path::PathBuf,
};

use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use folio_auth::{secrets::SecretKeys, tokens::TokenKeys};
use folio_core::{config::Config, queue::Topology};
use folio_db as db;

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

fn audit_spill_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join("folio-test-audit-spill").join(id)
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
            ("FOLIO_SECRET_KEYS", SecretKeys::generate()),
            ("FOLIO_BLOB_URL", format!("file://{}", blob_dir(&id).display())),
            ("FOLIO_AUDIT_SPILL_DIR", audit_spill_dir(&id).display().to_string()),
            ("FOLIO_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("FOLIO_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            // In-process workers parse in the built worker binary, as a
            // deployed one parses in its own executable.
            ("FOLIO_PARSER_PATH", binary_path("folio-worker").display().to_string()),
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
        if let Some(dir) = self.vars.get("FOLIO_AUDIT_SPILL_DIR") {
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
        // Migrated under another name and renamed once complete, so a run that
        // dies mid-way (a missing extension, say) leaves no half template
        // behind for later runs to clone.
        let building = format!("{template}_building");
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {building}"))
            .execute(&mut admin)
            .await
            .expect("drop an unfinished template");
        diesel::sql_query(format!("CREATE DATABASE {building}"))
            .execute(&mut admin)
            .await
            .expect("create template");
        db::migrate(&format!("{}/{building}", postgres_base()))
            .await
            .expect("migrate template");
        diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&mut admin)
            .await
            .expect("name the migrated template");
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

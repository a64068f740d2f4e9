//! Settings, read once from the environment (12-factor), with a `.env` file
//! loaded first for development. Every setting has one variable; a missing or
//! malformed one is a [`ConfigError`] that names it, so start-up can stop with a
//! single useful line instead of failing later somewhere deep.
//!
//! Layout: the process's own settings (connections, name prefixes, timings) are
//! fields of [`Config`] and read here; each section with a struct of its own
//! has a file (`documents` with `blobs`, `models`, `search`, `conversations`, `watch`) whose
//! `from_vars` reads it; [`Vars`] is how every one of them reads a variable,
//! its default and its error. The settings of accounts and tokens are
//! `folio_auth::config::AuthConfig`, read through the same [`Vars`] by the
//! api-server only: checking them needs the rules of `folio-auth`, which the
//! worker does not compile.

mod blobs;
mod conversations;
mod documents;
mod models;
mod search;
mod vars;
mod watch;

#[cfg(test)]
mod tests;

use std::{fmt, net::SocketAddr, time::Duration};

pub use blobs::{BLOB_VARIABLES, BlobOptions};
pub use conversations::{ChatConfig, ConversationsConfig};
pub use documents::{DocumentsConfig, MAX_UPLOAD_BYTES_DEFAULT, MAX_UPLOAD_BYTES_MAX, OcrConfig};
pub use models::{ApiKey, EmbedderKind, ModelsConfig, Provider, ProviderRole, RerankerKind};
pub use search::SearchConfig;
pub use watch::WatchConfig;

pub use vars::Vars;

/// All of folio's settings. Both binaries read the same set; each uses the part
/// it needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`: Postgres connection URL.
    pub database_url: String,
    /// `AMQP_URL`: RabbitMQ connection URL.
    pub amqp_url: String,
    /// `REDIS_URL`: Redis connection URL.
    pub redis_url: String,
    /// `FOLIO_AMQP_PREFIX`: prefix of every exchange and queue name.
    pub amqp_prefix: String,
    /// `FOLIO_REDIS_PREFIX`: prefix of every Redis key and channel.
    pub redis_prefix: String,
    /// `FOLIO_GRPC_ADDR`: where the api-server listens.
    pub grpc_addr: SocketAddr,
    /// `FOLIO_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `FOLIO_OTLP_ENDPOINT`: an OpenTelemetry collector's base URL; spans
    /// are exported to its `/v1/traces` (OTLP over HTTP) when set.
    pub otlp_endpoint: Option<String>,
    /// `FOLIO_METRICS_ADDR`: where the process serves Prometheus metrics at
    /// `/metrics`; none when unset.
    pub metrics_addr: Option<SocketAddr>,
    /// `FOLIO_DB_POOL_SIZE`: connections per process.
    pub db_pool_size: usize,
    /// `FOLIO_STARTUP_TIMEOUT_SECS`: how long start-up waits for a dependency.
    pub startup_timeout: Duration,
    /// `FOLIO_SHUTDOWN_GRACE_SECS`: how long in-flight work may take after SIGTERM.
    pub shutdown_grace: Duration,
    /// `FOLIO_SHUTDOWN_DELAY_SECS`: after SIGTERM, how long folio-api answers
    /// health NOT_SERVING while still taking calls, so a load balancer stops
    /// sending it new ones before it stops accepting them.
    pub shutdown_delay: Duration,
    /// `FOLIO_RPC_DEADLINE_SECS`: the server's bound on a call (but uploads),
    /// when the client's deadline is later or unset.
    pub rpc_deadline: Duration,
    /// `FOLIO_UPLOAD_DEADLINE_SECS`: the server's bound on an `UploadDocument`.
    pub upload_deadline: Duration,
    /// `FOLIO_WORKER_CONCURRENCY`: jobs one worker runs at once (its prefetch).
    pub worker_concurrency: u16,
    /// `FOLIO_MAX_ATTEMPTS`: attempts per job before it is dead-lettered.
    pub max_attempts: u32,
    /// `FOLIO_RETRY_BASE_MS`: delay before the first retry; each further retry
    /// waits four times longer.
    pub retry_base: Duration,
    /// `FOLIO_DELIVERY_LIMIT`: RabbitMQ's `x-delivery-limit` on the job queue, the
    /// backstop for a message that crashes workers before they can ack it.
    pub delivery_limit: u32,
    /// `FOLIO_CONSUMER_TIMEOUT_SECS`: the broker's `consumer_timeout` (RabbitMQ's
    /// default is 30 min). A ProcessDocument job still running after half of
    /// it is acked early and left to its document's lease, so the broker never
    /// closes the channel under it.
    pub consumer_timeout: Duration,
    /// `FOLIO_HEARTBEAT_SECS`: how often a worker records that it is alive.
    pub heartbeat_interval: Duration,
    /// `FOLIO_LEASE_SECS`: how long a document being processed stays leased
    /// to its worker without a heartbeat; once it runs out (and no live worker
    /// holds the document) the document is queued again. At least twice the
    /// heartbeat.
    pub lease: Duration,
    /// `FOLIO_WAIT_NOTICE_SECS`: how long a document waits for a worker before
    /// its events and GetDocument say why.
    pub wait_notice: Duration,
    /// `FOLIO_RELAY_POLL_MS`: how often the outbox relay looks for rows other
    /// processes wrote (its own are published at once).
    pub relay_poll: Duration,
    /// `FOLIO_SCHEDULER_AHEAD`: owned jobs the relay keeps ready in the
    /// process queue per consumer; the rest wait in the outbox for their
    /// owners' fair turns.
    pub scheduler_ahead: u32,
    /// `FOLIO_SCHEDULER_POLL_MS`: how often the relay reads the queue while
    /// owned jobs wait for room in it.
    pub scheduler_poll: Duration,
    /// `FOLIO_HEALTH_POLL_MS`: how often the api-server checks its dependencies.
    pub health_poll: Duration,
    /// `FOLIO_SERVICES_POLL_SECS`: how often an api-server checks the
    /// registered services.
    pub services_poll: Duration,
    /// `FOLIO_SETTINGS_REFRESH_MS`: how often an api-server rereads the
    /// settings admins change at run time (the `settings` table and the
    /// others `settings.rs` reads), and a worker the providers an admin chose.
    pub settings_refresh: Duration,
    /// `FOLIO_RETENTION_SWEEP_SECS`: how often the retention sweeper looks
    /// for documents past their retention (one api-server at a time sweeps).
    pub retention_sweep: Duration,
    /// `FOLIO_RETENTION_BATCH`: documents the sweeper deletes (or deletes the
    /// originals of) per transaction and audit row.
    pub retention_batch: u32,
    /// Document storage and pipeline settings.
    pub documents: DocumentsConfig,
    /// Live status stream settings.
    pub watch: WatchConfig,
    /// Embedding and reranking models.
    pub models: ModelsConfig,
    /// Search settings.
    pub search: SearchConfig,
    /// Conversations and Ask (the api-server's).
    pub conversations: ConversationsConfig,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A setting that is missing or malformed. Displays as one line naming the
/// variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting {}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The error for `variable`, with what is wrong with it.
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}

impl Config {
    /// Reads the settings from the process environment, after loading `.env`
    /// from the working directory if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(ConfigError::new(".env", format!("cannot be read: {error}")));
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which maps a variable name to its
    /// value. Tests use it to build a configuration without touching the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let heartbeat_interval = vars.secs("FOLIO_HEARTBEAT_SECS", 5, 1, 3600)?;
        let lease = vars.secs("FOLIO_LEASE_SECS", 60, 2, 86_400)?;
        if lease < heartbeat_interval * 2 {
            return Err(ConfigError::new(
                "FOLIO_LEASE_SECS",
                format!(
                    "{} s is less than twice FOLIO_HEARTBEAT_SECS ({} s): a live worker's leases would run out",
                    lease.as_secs(),
                    heartbeat_interval.as_secs()
                ),
            ));
        }
        Ok(Config {
            database_url: vars.url("DATABASE_URL", &["postgres", "postgresql"])?,
            amqp_url: vars.url("AMQP_URL", &["amqp"])?,
            redis_url: vars.url("REDIS_URL", &["redis"])?,
            amqp_prefix: vars.name_prefix("FOLIO_AMQP_PREFIX", "folio")?,
            redis_prefix: vars.name_prefix("FOLIO_REDIS_PREFIX", "folio:")?,
            grpc_addr: vars.parsed("FOLIO_GRPC_ADDR", "127.0.0.1:50051")?,
            otlp_endpoint: match vars.get("FOLIO_OTLP_ENDPOINT") {
                Some(_) => Some(vars.url("FOLIO_OTLP_ENDPOINT", &["http", "https"])?),
                None => None,
            },
            metrics_addr: vars.checked("FOLIO_METRICS_ADDR", |value| {
                value
                    .parse::<SocketAddr>()
                    .map_err(|error| format!("{value:?} is not an address: {error}"))
            })?,
            log_format: vars.choice("FOLIO_LOG_FORMAT", &[("text", LogFormat::Text), ("json", LogFormat::Json)])?,
            db_pool_size: vars.bounded("FOLIO_DB_POOL_SIZE", 16, 1, 1000)?,
            startup_timeout: vars.secs("FOLIO_STARTUP_TIMEOUT_SECS", 30, 0, 3600)?,
            shutdown_grace: vars.secs("FOLIO_SHUTDOWN_GRACE_SECS", 20, 0, 3600)?,
            shutdown_delay: vars.secs("FOLIO_SHUTDOWN_DELAY_SECS", 0, 0, 600)?,
            rpc_deadline: vars.secs("FOLIO_RPC_DEADLINE_SECS", 90, 1, 3600)?,
            upload_deadline: vars.secs("FOLIO_UPLOAD_DEADLINE_SECS", 3600, 1, 7 * 86_400)?,
            worker_concurrency: vars.bounded("FOLIO_WORKER_CONCURRENCY", 4, 1, 1000)?,
            max_attempts: vars.bounded("FOLIO_MAX_ATTEMPTS", 5, 1, 20)?,
            retry_base: vars.millis("FOLIO_RETRY_BASE_MS", 1000, 10, 3_600_000)?,
            delivery_limit: vars.bounded("FOLIO_DELIVERY_LIMIT", 10, 1, 1000)?,
            consumer_timeout: vars.secs("FOLIO_CONSUMER_TIMEOUT_SECS", 1800, 2, 7 * 86_400)?,
            heartbeat_interval,
            lease,
            wait_notice: vars.secs("FOLIO_WAIT_NOTICE_SECS", 120, 1, 86_400)?,
            relay_poll: vars.millis("FOLIO_RELAY_POLL_MS", 500, 10, 60_000)?,
            scheduler_ahead: vars.bounded("FOLIO_SCHEDULER_AHEAD", 2, 1, 100_000)?,
            scheduler_poll: vars.millis("FOLIO_SCHEDULER_POLL_MS", 20, 1, 10_000)?,
            health_poll: vars.millis("FOLIO_HEALTH_POLL_MS", 2000, 50, 60_000)?,
            services_poll: vars.secs("FOLIO_SERVICES_POLL_SECS", 30, 1, 86_400)?,
            settings_refresh: vars.millis("FOLIO_SETTINGS_REFRESH_MS", 1000, 50, 600_000)?,
            retention_sweep: vars.secs("FOLIO_RETENTION_SWEEP_SECS", 3600, 1, 7 * 86_400)?,
            retention_batch: vars.bounded("FOLIO_RETENTION_BATCH", 100, 1, 10_000)?,
            documents: DocumentsConfig::from_vars(&vars)?,
            search: SearchConfig::from_vars(&vars)?,
            conversations: ConversationsConfig::from_vars(&vars)?,
            watch: WatchConfig::from_vars(&vars)?,
            models: ModelsConfig::from_vars(&vars)?,
        })
    }
}

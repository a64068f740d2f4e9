//! Settings, read once from the environment (12-factor), with a `.env` file
//! loaded first for development. Every setting has one variable; a missing or
//! malformed one is a [`ConfigError`] that names it, so start-up can stop with a
//! single useful line instead of failing later somewhere deep.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use crate::auth::{Email, password::Password, tokens::TokenKeys};

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
    /// `FOLIO_DB_POOL_SIZE`: connections per process.
    pub db_pool_size: usize,
    /// `FOLIO_STARTUP_TIMEOUT_SECS`: how long start-up waits for a dependency.
    pub startup_timeout: Duration,
    /// `FOLIO_SHUTDOWN_GRACE_SECS`: how long in-flight work may take after SIGTERM.
    pub shutdown_grace: Duration,
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
    /// `FOLIO_HEARTBEAT_SECS`: how often a worker records that it is alive.
    pub heartbeat_interval: Duration,
    /// `FOLIO_RELAY_POLL_MS`: how often the outbox relay looks for rows other
    /// processes wrote (its own are published at once).
    pub relay_poll: Duration,
    /// `FOLIO_HEALTH_POLL_MS`: how often the api-server checks its dependencies.
    pub health_poll: Duration,
    /// `FOLIO_SETTINGS_REFRESH_MS`: how often an api-server rereads the
    /// settings admins change at run time (the `settings` table).
    pub settings_refresh: Duration,
    /// Identity and access settings.
    pub auth: AuthConfig,
    /// Document storage and pipeline settings.
    pub documents: DocumentsConfig,
    /// Live status stream settings.
    pub watch: WatchConfig,
    /// Embedding and reranking models.
    pub models: ModelsConfig,
    /// Search settings.
    pub search: SearchConfig,
}

/// Settings of SearchService.
#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// `FOLIO_HNSW_EF_SEARCH`: candidates the HNSW scan keeps (pgvector's
    /// `hnsw.ef_search`): higher finds more of the true nearest, slower.
    /// Unset, it scales with the number of chunks (100 up to 12,500 chunks,
    /// one per 125 above, at most 800; `chunk::SCALED_EF_SEARCH_PER`).
    pub ef_search: Option<u32>,
    /// `FOLIO_SEARCH_CANDIDATES`: candidates taken from each list (at least
    /// twice `top_k`) and handed to the reranker after fusion.
    pub candidates: usize,
}

/// Settings of the WatchDocument and WatchDocuments streams.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// `FOLIO_WATCH_POLL_MS`: how often the api-server reads new events from
    /// Postgres while Redis is unreachable (with Redis, notices wake it at once).
    pub poll: Duration,
    /// `FOLIO_WATCH_BACKSTOP_SECS`: how often it reads them while Redis is up,
    /// for a notice lost between a commit and its publish.
    pub backstop: Duration,
    /// `FOLIO_WATCH_HEARTBEAT_SECS`: a stream that sent nothing for this long
    /// sends a heartbeat message.
    pub heartbeat: Duration,
    /// `FOLIO_WATCH_BUFFER`: live events held for one stream; a stream that
    /// falls further behind reads from Postgres until it has caught up.
    pub buffer: usize,
    /// `FOLIO_WATCH_MAX_PER_USER`: streams one account may hold open on one
    /// api-server.
    pub max_per_user: usize,
    /// `FOLIO_WATCH_RECHECK_SECS`: how often a stream checks that its session is
    /// still live (revocations also reach streams at once through Redis).
    pub recheck: Duration,
}

/// Which embedding and reranking models run, and how to reach them.
#[derive(Clone, Debug)]
pub struct ModelsConfig {
    /// `FOLIO_EMBEDDER`: `hash` (no model), `openai` or `local`.
    pub embedder: EmbedderKind,
    /// `FOLIO_EMBED_URL`: the OpenAI-compatible server's base URL (`openai`);
    /// folio posts to `<url>/v1/embeddings`.
    pub embed_url: Option<String>,
    /// `FOLIO_EMBED_MODEL`: the model the server is asked for (`openai`).
    pub embed_model: Option<String>,
    /// `FOLIO_EMBED_API_KEY`: sent as a bearer token, if set (`openai`).
    pub embed_api_key: Option<ApiKey>,
    /// `FOLIO_EMBED_DIMENSION`: the vectors' dimension; every vector is checked
    /// against it.
    pub embed_dimension: usize,
    /// `FOLIO_EMBED_MODEL_DIR`: a sentence-transformers BERT model directory
    /// (`local`): config.json, model.safetensors, tokenizer.json.
    pub embed_model_dir: Option<PathBuf>,
    /// `FOLIO_EMBED_TIMEOUT_MS`: the time one request to the server may take.
    pub embed_timeout: Duration,
    /// `FOLIO_EMBED_CONCURRENCY`: embedding requests (`openai`) or inferences
    /// (`local`) one process runs at once.
    pub embed_concurrency: usize,
    /// `FOLIO_EMBED_MAX_BATCH`: the most texts in one request or inference;
    /// larger batches are split.
    pub embed_max_batch: usize,
    /// `FOLIO_RERANKER`: `lexical`, `tei`, `cohere` or `none`.
    pub reranker: RerankerKind,
    /// `FOLIO_RERANK_URL`: the reranking server's base URL (`tei`: folio posts
    /// to `<url>/rerank`; `cohere`: to `<url>/v1/rerank`).
    pub rerank_url: Option<String>,
    /// `FOLIO_RERANK_MODEL`: the model the server is asked for (`cohere`).
    pub rerank_model: Option<String>,
    /// `FOLIO_RERANK_API_KEY`: sent as a bearer token, if set.
    pub rerank_api_key: Option<ApiKey>,
    /// `FOLIO_RERANK_TIMEOUT_MS`: the time one reranking request may take.
    pub rerank_timeout: Duration,
    /// `FOLIO_RERANK_CONCURRENCY`: reranking requests one process runs at once.
    pub rerank_concurrency: usize,
}

/// The embedding provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedderKind {
    /// Feature hashing: no model, always available.
    Hash,
    /// An OpenAI-compatible `/v1/embeddings` server.
    OpenAi,
    /// A BERT model run in the process.
    Local,
}

/// The reranking provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RerankerKind {
    /// BM25 over the candidates, in the process.
    Lexical,
    /// Text Embeddings Inference's `/rerank`.
    Tei,
    /// The Cohere-style `/v1/rerank`.
    Cohere,
    /// No reranking.
    None,
}

/// A secret sent to a model server. Its `Debug` does not show it, so a logged
/// configuration does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

/// `FOLIO_MAX_UPLOAD_BYTES`'s built-in default and its largest value, which
/// also bound the run-time setting `max_upload_bytes` (the smallest is 1).
pub const MAX_UPLOAD_BYTES_DEFAULT: u64 = 100 << 20;
pub const MAX_UPLOAD_BYTES_MAX: u64 = 1 << 40;

/// The variables an `s3://` blob store reads: credentials (without them the
/// store asks the environment's instance or container credentials), region,
/// and an endpoint for an S3-compatible service.
pub const BLOB_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_SERVER_SIDE_ENCRYPTION",
    "AWS_SSE_KMS_KEY_ID",
];

/// Object store settings as (lower-cased variable name, value) pairs. Debug
/// shows only the names: the values include secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BlobOptions(pub Vec<(String, String)>);

impl fmt::Debug for BlobOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

/// Settings of uploads and the pipeline.
#[derive(Clone, Debug)]
pub struct DocumentsConfig {
    /// `FOLIO_BLOB_URL`: where blobs go (`file://<directory>` or
    /// `s3://<bucket>[/<prefix>]`).
    pub blob_url: String,
    /// The object store's settings from `AWS_*` variables (see
    /// [`BLOB_VARIABLES`]), for `s3://`.
    pub blob_options: BlobOptions,
    /// `FOLIO_MAX_UPLOAD_BYTES`: the largest document accepted, until an admin
    /// sets `max_upload_bytes` (SystemService.UpdateSettings).
    pub max_upload_bytes: u64,
    /// `FOLIO_INLINE_UPLOAD_BYTES`: the largest `CreateDocument` content.
    pub max_inline_bytes: u64,
    /// `FOLIO_CHUNK_TOKENS`: the most tokens (words) in a chunk.
    pub chunk_tokens: usize,
    /// `FOLIO_CHUNK_OVERLAP`: tokens a chunk repeats from the one before.
    pub chunk_overlap: usize,
    /// `FOLIO_EMBED_BATCH`: chunks embedded per batch (cancel is checked between).
    pub embed_batch: usize,
    /// `FOLIO_PARSE_TIMEOUT_SECS`: the time budget of parsing one document.
    pub parse_timeout: Duration,
    /// `FOLIO_HNSW_MAX_PENDING`: while a worker has jobs in flight its
    /// indexer leaves new chunks out of the HNSW graph and the RUM index
    /// (searches scan them exactly and match them through their own GIN
    /// index) unless more than this many wait.
    pub hnsw_max_pending: i64,
}

/// Settings of accounts, tokens and limits.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `FOLIO_TOKEN_KEYS`: comma-separated PASERK `k4.secret` keys; the first
    /// signs, all verify. Empty: a development key from `key_file`.
    pub token_keys: Vec<String>,
    /// `FOLIO_TOKEN_KEY_FILE`: where the development key is kept.
    pub key_file: PathBuf,
    /// `FOLIO_TOKEN_ISSUER`: the `iss` claim.
    pub issuer: String,
    /// `FOLIO_TOKEN_AUDIENCE`: the `aud` claim.
    pub audience: String,
    /// `FOLIO_ACCESS_TOKEN_TTL_SECS`: access token lifetime.
    pub access_ttl: Duration,
    /// `FOLIO_REFRESH_TTL_SECS`: absolute lifetime of a session.
    pub refresh_ttl: Duration,
    /// `FOLIO_REFRESH_IDLE_SECS`: how long an unused refresh token lives.
    pub refresh_idle: Duration,
    /// `FOLIO_REFRESH_REUSE_GRACE_MS`: a rotated token presented again within
    /// this time is a concurrent retry (refused, nothing revoked); later it is
    /// reuse (the family is revoked).
    pub refresh_reuse_grace: Duration,
    /// `FOLIO_OPEN_REGISTRATION`: whether anyone may `Register`.
    pub open_registration: bool,
    /// `FOLIO_ADMIN_EMAIL` and `FOLIO_ADMIN_PASSWORD`: the first admin, created
    /// at start if absent (never overwritten).
    pub bootstrap_admin: Option<(Email, String)>,
    /// `FOLIO_PASSWORD_HASH_CONCURRENCY`: argon2 hashes run at once.
    pub hash_concurrency: usize,
    /// `FOLIO_RATE_LIMIT_{ADMIN,MEMBER,VIEWER}`: calls per minute per account.
    pub rate_per_minute_admin: u32,
    pub rate_per_minute_member: u32,
    pub rate_per_minute_viewer: u32,
    /// `FOLIO_RATE_LIMIT_PEER`: calls per minute per peer address.
    pub rate_per_minute_peer: u32,
    /// `FOLIO_LOGIN_FAILURES_PER_ACCOUNT_PEER`: failed logins for one account from
    /// one address in 15 minutes before that pair must wait.
    pub login_failures_per_account_peer: u32,
    /// `FOLIO_LOGIN_FAILURES_PER_PEER`: failed logins from one address (any
    /// account) in 15 minutes before it must wait.
    pub login_failures_per_peer: u32,
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

impl Config {
    /// Reads the settings from the process environment, after loading `.env`
    /// from the working directory if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(ConfigError {
                variable: ".env",
                problem: format!("cannot be read: {error}"),
            });
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which maps a variable name to its
    /// value. Tests use it to build a configuration without touching the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        Ok(Config {
            database_url: vars.url("DATABASE_URL", &["postgres", "postgresql"])?,
            amqp_url: vars.url("AMQP_URL", &["amqp"])?,
            redis_url: vars.url("REDIS_URL", &["redis"])?,
            amqp_prefix: vars.name_prefix("FOLIO_AMQP_PREFIX", "folio")?,
            redis_prefix: vars.name_prefix("FOLIO_REDIS_PREFIX", "folio:")?,
            grpc_addr: vars.parsed("FOLIO_GRPC_ADDR", "127.0.0.1:50051")?,
            log_format: match vars.get("FOLIO_LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError {
                        variable: "FOLIO_LOG_FORMAT",
                        problem: format!("{other:?} is neither \"text\" nor \"json\""),
                    });
                }
            },
            db_pool_size: vars.bounded("FOLIO_DB_POOL_SIZE", 16, 1, 1000)?,
            startup_timeout: Duration::from_secs(vars.bounded("FOLIO_STARTUP_TIMEOUT_SECS", 30, 0, 3600)?),
            shutdown_grace: Duration::from_secs(vars.bounded("FOLIO_SHUTDOWN_GRACE_SECS", 20, 0, 3600)?),
            worker_concurrency: vars.bounded("FOLIO_WORKER_CONCURRENCY", 4, 1, 1000)?,
            max_attempts: vars.bounded("FOLIO_MAX_ATTEMPTS", 5, 1, 20)?,
            retry_base: Duration::from_millis(vars.bounded("FOLIO_RETRY_BASE_MS", 1000, 10, 3_600_000)?),
            delivery_limit: vars.bounded("FOLIO_DELIVERY_LIMIT", 10, 1, 1000)?,
            heartbeat_interval: Duration::from_secs(vars.bounded("FOLIO_HEARTBEAT_SECS", 5, 1, 3600)?),
            relay_poll: Duration::from_millis(vars.bounded("FOLIO_RELAY_POLL_MS", 500, 10, 60_000)?),
            health_poll: Duration::from_millis(vars.bounded("FOLIO_HEALTH_POLL_MS", 2000, 50, 60_000)?),
            settings_refresh: Duration::from_millis(vars.bounded("FOLIO_SETTINGS_REFRESH_MS", 1000, 50, 600_000)?),
            auth: AuthConfig::from_vars(&vars)?,
            documents: DocumentsConfig {
                blob_url: {
                    let url = vars.get("FOLIO_BLOB_URL").unwrap_or_else(|| "file://./data/blobs".into());
                    let bucket = url.strip_prefix("s3://").map(|rest| rest.split('/').next().unwrap_or_default());
                    if !(url.starts_with("file://") || bucket.is_some_and(|b| !b.is_empty())) {
                        return Err(ConfigError {
                            variable: "FOLIO_BLOB_URL",
                            problem: format!("{url:?} is not supported; use file://<directory> or s3://<bucket>[/<prefix>]"),
                        });
                    }
                    url
                },
                blob_options: BlobOptions(
                    BLOB_VARIABLES
                        .iter()
                        .filter_map(|name| vars.get(name).map(|value| (name.to_ascii_lowercase(), value)))
                        .collect(),
                ),
                max_upload_bytes: vars.bounded("FOLIO_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES_DEFAULT, 1, MAX_UPLOAD_BYTES_MAX)?,
                max_inline_bytes: vars.bounded("FOLIO_INLINE_UPLOAD_BYTES", 3 << 20, 1, 3 << 20)?,
                chunk_tokens: vars.bounded("FOLIO_CHUNK_TOKENS", 256, 16, 8192)?,
                chunk_overlap: vars.bounded("FOLIO_CHUNK_OVERLAP", 32, 0, 4096)?,
                embed_batch: vars.bounded("FOLIO_EMBED_BATCH", 64, 1, 4096)?,
                parse_timeout: Duration::from_secs(vars.bounded("FOLIO_PARSE_TIMEOUT_SECS", 120, 1, 3600)?),
                hnsw_max_pending: vars.bounded("FOLIO_HNSW_MAX_PENDING", 20_000, 0, 10_000_000)?,
            },
            search: SearchConfig {
                ef_search: vars.bounded_if_set("FOLIO_HNSW_EF_SEARCH", 1, 1000)?,
                candidates: vars.bounded("FOLIO_SEARCH_CANDIDATES", 50, 1, 1000)?,
            },
            watch: WatchConfig {
                poll: Duration::from_millis(vars.bounded("FOLIO_WATCH_POLL_MS", 500, 10, 60_000)?),
                backstop: Duration::from_secs(vars.bounded("FOLIO_WATCH_BACKSTOP_SECS", 5, 1, 3600)?),
                heartbeat: Duration::from_secs(vars.bounded("FOLIO_WATCH_HEARTBEAT_SECS", 15, 1, 3600)?),
                buffer: vars.bounded("FOLIO_WATCH_BUFFER", 256, 1, 1 << 20)?,
                max_per_user: vars.bounded("FOLIO_WATCH_MAX_PER_USER", 100, 1, 1 << 20)?,
                recheck: Duration::from_secs(vars.bounded("FOLIO_WATCH_RECHECK_SECS", 30, 1, 3600)?),
            },
            models: ModelsConfig::from_vars(&vars)?,
        })
    }
}

impl ModelsConfig {
    /// Reads only the model settings through `lookup`; the model tests and
    /// the embedding benchmark use it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_vars(&Vars(&lookup))
    }

    fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let embedder = match vars.get("FOLIO_EMBEDDER").as_deref() {
            None | Some("hash") => EmbedderKind::Hash,
            Some("openai") => EmbedderKind::OpenAi,
            Some("local") => EmbedderKind::Local,
            Some(other) => {
                return Err(ConfigError {
                    variable: "FOLIO_EMBEDDER",
                    problem: format!("{other:?} is not one of hash, openai, local"),
                });
            }
        };
        let reranker = match vars.get("FOLIO_RERANKER").as_deref() {
            None | Some("lexical") => RerankerKind::Lexical,
            Some("tei") => RerankerKind::Tei,
            Some("cohere") => RerankerKind::Cohere,
            Some("none") => RerankerKind::None,
            Some(other) => {
                return Err(ConfigError {
                    variable: "FOLIO_RERANKER",
                    problem: format!("{other:?} is not one of lexical, tei, cohere, none"),
                });
            }
        };
        let needed = |name: &'static str, needed: bool, by: &str| -> Result<Option<String>, ConfigError> {
            match vars.get(name) {
                None if needed => Err(ConfigError {
                    variable: name,
                    problem: format!("is not set but {by} needs it"),
                }),
                value => Ok(value),
            }
        };
        let http_url = |name: &'static str, needed_by: Option<&str>| -> Result<Option<String>, ConfigError> {
            match vars.get(name) {
                None => needed(name, needed_by.is_some(), needed_by.unwrap_or_default()),
                Some(_) => vars
                    .url(name, &["http", "https"])
                    .map(|url| Some(url.trim_end_matches('/').to_owned())),
            }
        };
        let openai = (embedder == EmbedderKind::OpenAi).then_some("FOLIO_EMBEDDER=openai");
        let local = embedder == EmbedderKind::Local;
        let rerank_by = match reranker {
            RerankerKind::Tei => Some("FOLIO_RERANKER=tei"),
            RerankerKind::Cohere => Some("FOLIO_RERANKER=cohere"),
            RerankerKind::Lexical | RerankerKind::None => None,
        };
        let millis = |name, default, min, max| vars.bounded(name, default, min, max).map(Duration::from_millis);
        Ok(ModelsConfig {
            embedder,
            embed_url: http_url("FOLIO_EMBED_URL", openai)?,
            embed_model: needed("FOLIO_EMBED_MODEL", openai.is_some(), "FOLIO_EMBEDDER=openai")?,
            embed_api_key: vars.get("FOLIO_EMBED_API_KEY").map(ApiKey),
            embed_dimension: vars.bounded("FOLIO_EMBED_DIMENSION", 384, 1, 16_000)?,
            embed_model_dir: needed("FOLIO_EMBED_MODEL_DIR", local, "FOLIO_EMBEDDER=local")?.map(PathBuf::from),
            embed_timeout: millis("FOLIO_EMBED_TIMEOUT_MS", 30_000, 10, 600_000)?,
            embed_concurrency: vars.bounded("FOLIO_EMBED_CONCURRENCY", 4, 1, 256)?,
            embed_max_batch: vars.bounded("FOLIO_EMBED_MAX_BATCH", 32, 1, 4096)?,
            reranker,
            rerank_url: http_url("FOLIO_RERANK_URL", rerank_by)?,
            rerank_model: needed("FOLIO_RERANK_MODEL", reranker == RerankerKind::Cohere, "FOLIO_RERANKER=cohere")?,
            rerank_api_key: vars.get("FOLIO_RERANK_API_KEY").map(ApiKey),
            rerank_timeout: millis("FOLIO_RERANK_TIMEOUT_MS", 10_000, 10, 600_000)?,
            rerank_concurrency: vars.bounded("FOLIO_RERANK_CONCURRENCY", 8, 1, 256)?,
        })
    }
}

impl AuthConfig {
    fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let token_keys: Vec<String> = vars
            .get("FOLIO_TOKEN_KEYS")
            .map(|keys| keys.split(',').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect())
            .unwrap_or_default();
        if !token_keys.is_empty() {
            TokenKeys::from_paserks(&token_keys).map_err(|problem| ConfigError {
                variable: "FOLIO_TOKEN_KEYS",
                problem,
            })?;
        }
        let admin_email = vars
            .get("FOLIO_ADMIN_EMAIL")
            .map(|email| Email::parse(&email))
            .transpose()
            .map_err(|problem| ConfigError {
                variable: "FOLIO_ADMIN_EMAIL",
                problem: problem.into(),
            })?;
        let bootstrap_admin = match (admin_email, (vars.0)("FOLIO_ADMIN_PASSWORD").filter(|p| !p.is_empty())) {
            (None, None) => None,
            (Some(email), Some(password)) => {
                Password::parse(&password).map_err(|problem| ConfigError {
                    variable: "FOLIO_ADMIN_PASSWORD",
                    problem: problem.into(),
                })?;
                Some((email, password))
            }
            (Some(_), None) => {
                return Err(ConfigError {
                    variable: "FOLIO_ADMIN_PASSWORD",
                    problem: "is not set but FOLIO_ADMIN_EMAIL is".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError {
                    variable: "FOLIO_ADMIN_EMAIL",
                    problem: "is not set but FOLIO_ADMIN_PASSWORD is".into(),
                });
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let secs = |name, default, min, max| vars.bounded(name, default, min, max).map(Duration::from_secs);
        Ok(AuthConfig {
            token_keys,
            key_file: PathBuf::from(vars.get("FOLIO_TOKEN_KEY_FILE").unwrap_or_else(|| "data/token-key.paserk".into())),
            issuer: vars.get("FOLIO_TOKEN_ISSUER").unwrap_or_else(|| "folio".into()),
            audience: vars.get("FOLIO_TOKEN_AUDIENCE").unwrap_or_else(|| "folio".into()),
            access_ttl: secs("FOLIO_ACCESS_TOKEN_TTL_SECS", 900, 1, 86_400)?,
            refresh_ttl: secs("FOLIO_REFRESH_TTL_SECS", 30 * 86_400, 60, 365 * 86_400)?,
            refresh_idle: secs("FOLIO_REFRESH_IDLE_SECS", 7 * 86_400, 60, 365 * 86_400)?,
            refresh_reuse_grace: Duration::from_millis(vars.bounded("FOLIO_REFRESH_REUSE_GRACE_MS", 2000, 0, 60_000)?),
            open_registration: vars.boolean("FOLIO_OPEN_REGISTRATION", true)?,
            bootstrap_admin,
            hash_concurrency: vars.bounded("FOLIO_PASSWORD_HASH_CONCURRENCY", cores, 1, 256)?,
            rate_per_minute_admin: vars.bounded("FOLIO_RATE_LIMIT_ADMIN", 1200, 1, 1_000_000)?,
            rate_per_minute_member: vars.bounded("FOLIO_RATE_LIMIT_MEMBER", 600, 1, 1_000_000)?,
            rate_per_minute_viewer: vars.bounded("FOLIO_RATE_LIMIT_VIEWER", 600, 1, 1_000_000)?,
            rate_per_minute_peer: vars.bounded("FOLIO_RATE_LIMIT_PEER", 3000, 1, 1_000_000)?,
            login_failures_per_account_peer: vars.bounded("FOLIO_LOGIN_FAILURES_PER_ACCOUNT_PEER", 5, 1, 10_000)?,
            login_failures_per_peer: vars.bounded("FOLIO_LOGIN_FAILURES_PER_PEER", 50, 1, 100_000)?,
        })
    }
}

struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The variable's value, with an empty value treated as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn url(&self, name: &'static str, schemes: &[&str]) -> Result<String, ConfigError> {
        let value = self.get(name).ok_or_else(|| ConfigError {
            variable: name,
            problem: "is not set".into(),
        })?;
        let scheme = value.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(scheme) if schemes.contains(&scheme) => Ok(value),
            _ => Err(ConfigError {
                variable: name,
                problem: format!("must be a URL starting with {}://", schemes.join("://, ")),
            }),
        }
    }

    fn parsed<T: FromStr>(&self, name: &'static str, default: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        value.parse().map_err(|error| ConfigError {
            variable: name,
            problem: format!("{value:?} is not valid: {error}"),
        })
    }

    /// A number within `min..=max` if the variable is set, else `None`.
    fn bounded_if_set<T>(&self, name: &'static str, min: T, max: T) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            Some(_) => self.bounded(name, min, min, max).map(Some),
            None => Ok(None),
        }
    }

    fn bounded<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let parsed: T = value.parse().map_err(|error| ConfigError {
            variable: name,
            problem: format!("{value:?} is not a number: {error}"),
        })?;
        if parsed < min || parsed > max {
            return Err(ConfigError {
                variable: name,
                problem: format!("{parsed} is outside {min}..={max}"),
            });
        }
        Ok(parsed)
    }

    fn boolean(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError {
                variable: name,
                problem: format!("{other:?} is not true or false"),
            }),
        }
    }

    /// A prefix for broker or Redis names: short, and only characters that need
    /// no quoting anywhere (letters, digits, `.`, `_`, `-`, `:`).
    fn name_prefix(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
        if value.len() > 64 || !value.chars().all(allowed) {
            return Err(ConfigError {
                variable: name,
                problem: format!("{value:?} must be at most 64 of A-Z a-z 0-9 . _ - :"),
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    const REQUIRED: [(&str, &str); 3] = [
        ("DATABASE_URL", "postgres://localhost/folio"),
        ("AMQP_URL", "amqp://localhost:5672/%2f"),
        ("REDIS_URL", "redis://localhost:6379"),
    ];

    #[test]
    fn defaults_apply_when_only_the_urls_are_set() {
        let config = Config::from_lookup(lookup(&REQUIRED)).unwrap();
        assert_eq!(config.grpc_addr, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(config.amqp_prefix, "folio");
        assert_eq!(config.redis_prefix, "folio:");
        assert_eq!(config.max_attempts, 5);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.auth.access_ttl, Duration::from_secs(900));
        assert!(config.auth.open_registration);
        assert!(config.auth.bootstrap_admin.is_none());
        assert_eq!(config.search.ef_search, None, "unset: scaled with the corpus");
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("FOLIO_HNSW_EF_SEARCH", "300"));
        assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap().search.ef_search, Some(300));
    }

    #[test]
    fn the_bootstrap_admin_needs_both_settings_and_a_valid_password() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("FOLIO_ADMIN_EMAIL", "admin@example.org"));
        assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, "FOLIO_ADMIN_PASSWORD");
        pairs.push(("FOLIO_ADMIN_PASSWORD", "password"));
        let error = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(error.variable, "FOLIO_ADMIN_PASSWORD");
        pairs.push(("FOLIO_ADMIN_PASSWORD", "a sturdy admin passphrase"));
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.auth.bootstrap_admin.unwrap().0.as_str(), "admin@example.org");
    }

    #[test]
    fn blob_urls_are_a_directory_or_an_s3_bucket_and_s3_secrets_stay_out_of_debug() {
        for bad in ["s3://", "s3:///prefix", "gs://bucket", "/var/blobs"] {
            let mut pairs = REQUIRED.to_vec();
            pairs.push(("FOLIO_BLOB_URL", bad));
            assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, "FOLIO_BLOB_URL", "{bad}");
        }
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([
            ("FOLIO_BLOB_URL", "s3://folio-blobs/prod"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_NOT_A_SETTING", "ignored"),
        ]);
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.documents.blob_url, "s3://folio-blobs/prod");
        assert_eq!(
            config.documents.blob_options.0,
            [
                ("aws_secret_access_key".to_owned(), "very-secret".to_owned()),
                ("aws_region".to_owned(), "eu-west-1".to_owned()),
            ]
        );
        assert!(!format!("{config:?}").contains("very-secret"));
    }

    #[test]
    fn a_missing_url_names_its_variable() {
        let error = Config::from_lookup(lookup(&REQUIRED[..2])).unwrap_err();
        assert_eq!(error.variable, "REDIS_URL");
        assert_eq!(error.to_string(), "setting REDIS_URL: is not set");
    }

    #[test]
    fn models_default_to_hash_and_lexical_and_each_provider_asks_for_what_it_needs() {
        let config = Config::from_lookup(lookup(&REQUIRED)).unwrap();
        assert_eq!(config.models.embedder, EmbedderKind::Hash);
        assert_eq!(config.models.embed_dimension, 384);
        assert_eq!(config.models.reranker, RerankerKind::Lexical);

        let mut pairs = REQUIRED.to_vec();
        pairs.push(("FOLIO_EMBEDDER", "openai"));
        let error = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "setting FOLIO_EMBED_URL: is not set but FOLIO_EMBEDDER=openai needs it"
        );
        pairs.push(("FOLIO_EMBED_URL", "http://127.0.0.1:8000/"));
        assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, "FOLIO_EMBED_MODEL");
        pairs.push(("FOLIO_EMBED_MODEL", "e5-small"));
        pairs.push(("FOLIO_EMBED_API_KEY", "sk-secret"));
        let models = Config::from_lookup(lookup(&pairs)).unwrap().models;
        assert_eq!(models.embed_url.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(models.embed_api_key.as_ref().map(ApiKey::expose), Some("sk-secret"));
        assert!(!format!("{models:?}").contains("sk-secret"));

        for (kind, missing) in [
            ("local", "FOLIO_EMBED_MODEL_DIR"),
            ("tei", "FOLIO_RERANK_URL"),
            ("cohere", "FOLIO_RERANK_URL"),
        ] {
            let mut pairs = REQUIRED.to_vec();
            let name = if kind == "local" { "FOLIO_EMBEDDER" } else { "FOLIO_RERANKER" };
            pairs.push((name, kind));
            assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, missing, "{kind}");
        }
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("FOLIO_RERANKER", "cohere"));
        pairs.push(("FOLIO_RERANK_URL", "https://rerank.example"));
        assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, "FOLIO_RERANK_MODEL");
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (name, value) in [
            ("FOLIO_GRPC_ADDR", "not-an-address"),
            ("FOLIO_WORKER_CONCURRENCY", "0"),
            ("FOLIO_MAX_ATTEMPTS", "many"),
            ("FOLIO_LOG_FORMAT", "xml"),
            ("FOLIO_AMQP_PREFIX", "has space"),
            ("DATABASE_URL", "mysql://x"),
            ("FOLIO_TOKEN_KEYS", "k4.secret.nonsense"),
            ("FOLIO_OPEN_REGISTRATION", "maybe"),
            ("FOLIO_ADMIN_EMAIL", "not-an-email"),
            ("FOLIO_EMBEDDER", "word2vec"),
            ("FOLIO_RERANKER", "random"),
            ("FOLIO_EMBED_URL", "ftp://models"),
            ("FOLIO_EMBED_DIMENSION", "0"),
            ("FOLIO_EMBED_TIMEOUT_MS", "soon"),
            ("FOLIO_EMBED_MAX_BATCH", "100000"),
            ("FOLIO_HNSW_EF_SEARCH", "0"),
        ] {
            let mut pairs = REQUIRED.to_vec();
            pairs.push((name, value));
            let error = Config::from_lookup(lookup(&pairs)).unwrap_err();
            assert_eq!(error.variable, name, "{value}");
            assert!(!error.to_string().contains('\n'));
        }
    }
}

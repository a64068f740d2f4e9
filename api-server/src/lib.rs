//! folio-api: the gRPC server, the outbox relay and the dependency poller.
//!
//! # Layout
//!
//! - [`run`] wires everything: it waits (bounded) for Postgres, Redis and
//!   RabbitMQ, migrates, starts the relay and the health poller, and serves
//!   until the shutdown future resolves.
//! - [`system`], [`auth_service`], [`user_service`], [`document_service`],
//!   [`search_service`] and [`sharing_service`] hold the gRPC services, shims
//!   over inner functions that take and return domain values; in domain
//!   terms too, [`accounts`] holds the account and session logic that
//!   [`auth_service`] and [`user_service`] share, [`settings`] the run-time
//!   settings, [`search`] the search and reindexing that [`search_service`]
//!   serves, and [`sharing`] groups, shares and who may read or change a
//!   document.
//! - [`convert`] holds the conversions between domain and protobuf types.
//! - [`dead_letters`] holds listing, replaying and purging dead letters, and
//!   [`stats`] the admin statistics, [`services`] the registered services
//!   and their checks.
//! - [`auth`] holds the middleware in front of every service (tokens, the
//!   access table, rate limits) and [`audit`] the audit log writer.
//! - [`relay`] holds outbox to RabbitMQ with publisher confirms.
//! - [`watch`] holds the live status streams and the hub that feeds them.
//! - [`health`] holds dependency checks behind `GetInfo` and `grpc.health.v1`.
//! - [`metrics`] holds the measure of every call and what the api-server's
//!   `/metrics` reads at a scrape.
//! - [`waiting`] notes documents that wait too long for a worker, and why.
//! - [`error`] holds the one mapping from domain errors to gRPC statuses.
//! - [`observe`] holds the layer that runs every call in its trace and
//!   counts and times it.
//!
//! `main.rs` only reads the configuration, installs logging, binds the listener
//! and turns SIGTERM/SIGINT into the shutdown future.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod auth_service;
pub mod breaches;
pub mod broker;
pub mod conversation_service;
pub mod conversations;
pub mod convert;
pub mod dead_letters;
pub mod deadline;
pub mod document_service;
pub mod email_flows;
pub mod error;
pub mod health;
pub mod mail;
pub mod metrics;
pub mod observe;
pub mod oidc;
pub mod page_token;
pub mod providers;
pub mod quota;
pub mod relay;
pub mod retention;
pub mod search;
pub mod search_service;
pub mod second_factor;
pub mod services;
pub mod settings;
pub mod sharing;
pub mod sharing_service;
pub mod sso;
pub mod stats;
pub mod system;
pub mod user_service;
pub mod waiting;
pub mod watch;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context as _;
use folio_auth::{
    config::AuthConfig,
    password::Hasher,
    secrets::SecretKeys,
    tokens::{self, TokenIssuer, TokenKeys},
};
use folio_core::{
    blobs::Blobs,
    cache::Cache,
    config::{Config, ConfigError},
    queue::Topology,
    startup,
};
use folio_db::{self as db, documents::lifecycle::WaitNotice};
use folio_proto::v1::{
    auth_service_server::AuthServiceServer, conversation_service_server::ConversationServiceServer,
    document_service_server::DocumentServiceServer, search_service_server::SearchServiceServer,
    sharing_service_server::SharingServiceServer, system_service_server::SystemServiceServer, user_service_server::UserServiceServer,
};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::{
    accounts::Accounts,
    audit::Auditor,
    auth::{
        guard::Guard,
        middleware::{AuthLayer, AuthState},
    },
    auth_service::Auth,
    breaches::Breaches,
    broker::BrokerLink,
    health::Dependencies,
    relay::Relay,
    system::System,
    user_service::Users,
    watch::Hub,
};

/// The api-server's settings: what both binaries read, and the settings of
/// accounts and tokens, which only the api-server reads (they live in
/// `folio-auth`, which the worker does not depend on).
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The settings both binaries share.
    pub core: Config,
    /// Identity and access settings.
    pub auth: AuthConfig,
}

impl ApiConfig {
    /// Reads the settings through `lookup` (see [`Config::from_lookup`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(ApiConfig {
            core: Config::from_lookup(&lookup)?,
            auth: AuthConfig::from_lookup(&lookup)?,
        })
    }
}

impl startup::Settings for ApiConfig {
    fn from_env() -> Result<Self, ConfigError> {
        // `Config::from_env` loads `.env` into the environment first.
        let core = Config::from_env()?;
        let auth = AuthConfig::from_lookup(|name| std::env::var(name).ok())?;
        Ok(ApiConfig { core, auth })
    }

    fn core(&self) -> &Config {
        &self.core
    }
}

/// The token keys from `FOLIO_TOKEN_KEYS`, or the development key file.
pub fn token_keys(auth: &AuthConfig) -> anyhow::Result<TokenKeys> {
    if auth.token_keys.is_empty() {
        let keys = TokenKeys::development(&auth.key_file).map_err(|e| anyhow::anyhow!("setting FOLIO_TOKEN_KEY_FILE: {e}"))?;
        tracing::warn!(file = %auth.key_file.display(), "FOLIO_TOKEN_KEYS is not set: signing with a development key; set it in production");
        Ok(keys)
    } else {
        TokenKeys::from_paserks(&auth.token_keys).map_err(|e| anyhow::anyhow!("setting FOLIO_TOKEN_KEYS: {e}"))
    }
}

/// The sealing keys from `FOLIO_SECRET_KEYS`, or the development key file.
pub fn secret_keys(auth: &AuthConfig) -> anyhow::Result<SecretKeys> {
    if auth.secret_keys.is_empty() {
        let keys = SecretKeys::development(&auth.secret_key_file).map_err(|e| anyhow::anyhow!("setting FOLIO_SECRET_KEY_FILE: {e}"))?;
        tracing::warn!(file = %auth.secret_key_file.display(), "FOLIO_SECRET_KEYS is not set: sealing secrets with a development key; set it in production");
        Ok(keys)
    } else {
        SecretKeys::from_paserks(&auth.secret_keys).map_err(|e| anyhow::anyhow!("setting FOLIO_SECRET_KEYS: {e}"))
    }
}

/// Waits for Postgres and applies pending migrations. Used at start and by
/// `folio-api migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<Vec<String>> {
    startup::wait_for("postgres", config.startup_timeout, || db::migrate(&config.database_url))
        .await
        .map_err(Into::into)
}

/// Asks the server at `addr` for its health; Ok only when it is SERVING.
pub async fn probe_health(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(2))
        .connect()
        .await
        .with_context(|| format!("no server at {addr}"))?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await?
        .into_inner()
        .status();
    anyhow::ensure!(status == ServingStatus::Serving, "{addr} is {}", status.as_str_name());
    println!("{addr} is SERVING");
    Ok(())
}

/// Runs the api-server on `listener` until `shutdown` resolves, then stops
/// accepting calls, lets in-flight ones finish within the grace period and
/// returns. A dependency still unreachable after the start-up timeout is an
/// [`startup::Unreachable`] error.
pub async fn run(config: ApiConfig, listener: TcpListener, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let ApiConfig { core: config, auth } = config;
    let started_at = chrono::Utc::now();
    let started = tokio::time::Instant::now();

    if config.metrics_addr.is_some() {
        // Before any task records a metric.
        folio_core::metrics::recorder()?;
    }
    let keys = token_keys(&auth)?;
    let secrets = secret_keys(&auth)?;
    let blobs = Blobs::open(&config.documents.blob_url, &config.documents.blob_options)
        .map_err(|e| anyhow::anyhow!("setting FOLIO_BLOB_URL: {e}"))?;
    tracing::info!(keys = tokens::describe(&keys), "token keys loaded");
    // No statement outlives the server's bound on a call, nor the deadline
    // of the call that runs it (the deadline layer sets it around every
    // handler): Postgres cancels it there. (Uploads run longer, but only
    // while streaming bytes.)
    let pool = db::pool_with_statement_bound(&config.database_url, config.db_pool_size, config.rpc_deadline).context("database pool")?;
    startup::wait_for("postgres", config.startup_timeout, || db::ping(&pool)).await?;
    let applied = migrate(&config).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    let cache = startup::wait_for("redis", config.startup_timeout, || {
        Cache::connect(&config.redis_url, &config.redis_prefix)
    })
    .await?;
    // Declaring the topology before serving makes the first mandatory publish
    // routable even when no worker has started yet.
    let topology = Topology::new(&config);
    let connection = startup::wait_for("rabbitmq", config.startup_timeout, || async {
        let connection = BrokerLink::connect(&config.amqp_url, "folio-api relay").await?;
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        let _ = channel.close(200, "topology declared".into()).await;
        anyhow::Ok(connection)
    })
    .await?;
    let broker = Arc::new(BrokerLink::default());
    broker.set(Arc::new(connection));

    let cancel = CancellationToken::new();
    let relay_wake = Arc::new(Notify::new());
    let relay = tokio::spawn(
        Relay {
            pool: pool.clone(),
            broker: broker.clone(),
            amqp_url: config.amqp_url.clone(),
            topology: topology.clone(),
            wake: relay_wake.clone(),
            poll: config.relay_poll,
            ahead: config.scheduler_ahead,
            hold_poll: config.scheduler_poll,
        }
        .run(cancel.clone()),
    );

    let (auditor, audit_writer) = Auditor::start(pool.clone(), auth.audit_buffer, auth.audit_spill_dir.clone(), cancel.clone());
    let audit_stats = auditor.stats.clone();
    let guard = Guard {
        cache: cache.clone(),
        config: auth.clone(),
    };
    let token_issuer = TokenIssuer {
        keys,
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
        ttl: auth.access_ttl,
    };
    let mail_wake = mail::Wake::default();
    let mail_task = tokio::spawn(
        mail::Sender::new(
            pool.clone(),
            auth.smtp_url.as_deref(),
            &auth.email_from,
            mail_wake.clone(),
            config.relay_poll.max(Duration::from_secs(1)),
        )?
        .run(cancel.clone()),
    );
    let accounts = Accounts {
        pool: pool.clone(),
        hasher: Hasher::new(auth.hash_concurrency),
        tokens: token_issuer.clone(),
        guard: guard.clone(),
        config: auth.clone(),
        secrets,
        breaches: Breaches::new(auth.breached_passwords_url.clone(), auth.breached_passwords_timeout)?,
        mail_wake,
        oidc: Arc::new(oidc::Oidc::new(auth.oidc_providers.clone(), pool.clone())?),
    };
    accounts.bootstrap_admin().await?;
    let auth_layer = AuthLayer::new(AuthState {
        tokens: token_issuer,
        pool: pool.clone(),
        guard,
        auditor,
    });

    let search_replica = match &config.search.replica_url {
        Some(url) => Some(db::pool_with_statement_bound(url, config.db_pool_size, config.rpc_deadline).context("search replica pool")?),
        None => None,
    };
    let search_reads = search::reads::Reads::new(pool.clone(), search_replica, config.search.replica_wait);
    let dependencies = Dependencies {
        pool: pool.clone(),
        search_reads: search_reads.clone(),
        cache,
        broker,
        topology,
    };
    let metrics_task = match config.metrics_addr {
        Some(addr) => {
            let sampler = metrics::ApiSampler {
                dependencies: dependencies.clone(),
                audit: audit_stats.clone(),
            };
            Some(folio_core::metrics::serve(addr, Arc::new(sampler), cancel.clone()).await?)
        }
        None => None,
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health::set_status(&health_reporter, false).await;
    let poller = tokio::spawn(health::poll(
        dependencies.clone(),
        health_reporter.clone(),
        config.health_poll,
        cancel.clone(),
    ));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(folio_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(folio_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let redis = redis::Client::open(config.redis_url.as_str()).context("REDIS_URL")?;
    let (hub, hub_task) = Hub::start(config.watch.clone(), pool.clone(), redis, &config.redis_prefix, cancel.clone()).await?;
    let models = Arc::new(folio_models::live::Live::new(
        config.models.clone(),
        folio_models::embed::from_config(&config.models)?,
    )?);
    let (settings, settings_task) = settings::Settings::start(
        pool.clone(),
        config.documents.max_upload_bytes,
        models.clone(),
        config.settings_refresh,
        cancel.clone(),
    )
    .await?;
    let wait_notice = WaitNotice {
        bound: config.wait_notice,
        // Three missed heartbeats and a worker counts as gone.
        alive_within: config.heartbeat_interval * 3,
    };
    let waiting_task = tokio::spawn(waiting::run(pool.clone(), dependencies.cache.clone(), wait_notice, cancel.clone()));
    let retention_task = tokio::spawn(retention::run(
        retention::Sweeper {
            pool: pool.clone(),
            blobs: blobs.clone(),
            cache: dependencies.cache.clone(),
            settings: settings.clone(),
            batch: config.retention_batch,
        },
        config.retention_sweep,
        cancel.clone(),
    ));
    let documents = document_service::Documents {
        pool: pool.clone(),
        blobs,
        cache: dependencies.cache.clone(),
        relay_wake: relay_wake.clone(),
        hub: hub.clone(),
        shutdown: cancel.clone(),
        config: config.documents.clone(),
        settings: settings.clone(),
        max_tries: config.max_attempts,
        wait_notice,
        backlogs: Default::default(),
    };
    let search = search::Search {
        pool: pool.clone(),
        reads: search_reads,
        models,
        chunk_sizes: (config.documents.chunk_tokens, config.documents.chunk_overlap),
        config: config.search.clone(),
        relay_wake: relay_wake.clone(),
        cache: dependencies.cache.clone(),
    };
    let conversations = conversations::Conversations {
        cache: match &config.conversations.redis_url {
            Some(url) => {
                startup::wait_for("redis (conversations)", config.startup_timeout, || {
                    Cache::connect(url, &config.redis_prefix)
                })
                .await?
            }
            None => dependencies.cache.clone(),
        },
        config: config.conversations.clone(),
        search: search.clone(),
        chat: match &config.conversations.chat {
            Some(chat) => Some(folio_models::chat::Chat::from_config(chat).map_err(anyhow::Error::msg)?),
            None => None,
        },
    };
    services::register_model_servers(&pool, &settings.effective_models()).await?;
    folio_core::startup::install_tls_provider();
    let http = reqwest::Client::builder()
        .timeout(services::CHECK_TIMEOUT)
        .build()
        .context("the services' HTTP client")?;
    let services_task = tokio::spawn(services::poll(pool.clone(), http.clone(), config.services_poll, cancel.clone()));
    let dead_letters = dead_letters::DeadLetters {
        pool: pool.clone(),
        cache: dependencies.cache.clone(),
        relay_wake: relay_wake.clone(),
    };
    let sharing = sharing::Sharing {
        pool: pool.clone(),
        cache: dependencies.cache.clone(),
    };
    let system = System {
        pool,
        settings,
        hub,
        dependencies,
        relay_wake,
        started_at,
        started,
        audit: audit_stats,
        dead_letters,
        alive_within: wait_notice.alive_within,
        http,
        search: search.clone(),
    };

    let address = listener.local_addr()?;
    let stop_accepting = CancellationToken::new();
    let server = tonic::transport::Server::builder()
        // Pings find dead peers, so a vanished client's streams are dropped.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        // Outermost: everything below runs in the call's trace, and it
        // counts each answer as the client sees it.
        .layer(observe::ObserveLayer)
        // Outside authentication, so the deadline covers its lookups too.
        .layer(deadline::DeadlineLayer(deadline::Deadlines {
            rpc: config.rpc_deadline,
            upload: config.upload_deadline,
        }))
        .layer(auth_layer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(SystemServiceServer::new(system))
        .add_service(AuthServiceServer::new(Auth {
            accounts: accounts.clone(),
        }))
        .add_service(UserServiceServer::new(Users { accounts }))
        .add_service(DocumentServiceServer::new(documents).max_decoding_message_size(4 << 20))
        .add_service(SearchServiceServer::new(search))
        .add_service(ConversationServiceServer::new(conversations))
        .add_service(SharingServiceServer::new(sharing))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a small response (a watch event, a unary
            // answer) can wait for the peer's delayed ACK: 40 ms on Linux.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop_accepting.clone().cancelled_owned(),
        );
    tokio::pin!(server);
    tracing::info!(%address, version = folio_core::VERSION, "folio-api serving");

    let served = tokio::select! {
        served = &mut server => served.map_err(anyhow::Error::from),
        () = shutdown => {
            tracing::info!(grace = ?config.shutdown_grace, "shutting down: no new calls, draining in-flight ones");
            cancel.cancel();
            let _ = poller.await;
            health::set_status(&health_reporter, false).await;
            // Load balancers see NOT_SERVING and stop sending new calls
            // before the server stops accepting them; meanwhile it serves.
            let mut ended = None;
            if !config.shutdown_delay.is_zero() {
                tracing::info!(delay = ?config.shutdown_delay, "health NOT_SERVING; still taking calls for the shutdown delay");
                tokio::select! {
                    () = tokio::time::sleep(config.shutdown_delay) => {}
                    served = &mut server => ended = Some(served.map_err(anyhow::Error::from)),
                }
            }
            match ended {
                Some(served) => served,
                None => {
                    stop_accepting.cancel();
                    match tokio::time::timeout(config.shutdown_grace, &mut server).await {
                        Ok(served) => served.map_err(anyhow::Error::from),
                        Err(_) => {
                            tracing::warn!("grace period over, dropping the calls still running");
                            Ok(())
                        }
                    }
                }
            }
        }
    };
    cancel.cancel();
    let _ = hub_task.await;
    let _ = settings_task.await;
    let _ = relay.await;
    let _ = waiting_task.await;
    let _ = services_task.await;
    let _ = retention_task.await;
    let _ = mail_task.await;
    let _ = audit_writer.await;
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    tracing::info!("folio-api stopped");
    served
}

//! folio-worker: consumes jobs from RabbitMQ and runs them against Postgres.
//!
//! # Layout
//!
//! - [`run`] registers the worker, starts its heartbeat and the consumer, and
//!   on shutdown stops consuming, drains in-flight jobs and marks itself stopped.
//! - [`consumer`] holds the RabbitMQ session loop (reconnects in-process), acks and
//!   retries.
//! - [`jobs`] holds one file per job kind and the list that dispatches them.
//! - [`activity`] holds what is in flight, and the heartbeat that reports it.
//! - [`sandbox`] runs the parser in a child process (`folio-worker parse`)
//!   under memory and time limits, and is that child.
//! - [`ocr`] reads scanned PDF pages and images with Tesseract, a child
//!   process per page under the same kind of limits.
//! - [`segments`] seals new chunks into search segments with indexes built
//!   in bulk, and merges them (one worker at a time).

pub mod activity;
pub mod consumer;
pub mod jobs;
pub mod ocr;
pub mod sandbox;
pub mod segments;

use std::{future::Future, sync::Arc};

use anyhow::Context as _;
use folio_core::{blobs::Blobs, cache::Cache, config::Config, queue::Topology, startup};
use folio_db::{
    self as db,
    models::{provider, worker},
};
use folio_models::{embed, live::Live};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{activity::Activity, consumer::Consumer, jobs::JobContext};

/// What a worker's `/metrics` reads at a scrape (the rest it records as it
/// goes): its database pool.
struct PoolSampler(db::Pool);

impl folio_core::metrics::Sampler for PoolSampler {
    fn sample(&self) -> futures_util::future::BoxFuture<'_, ()> {
        db::record_pool_metrics(&self.0);
        Box::pin(std::future::ready(()))
    }
}

/// Rereads the providers an admin chose at run time (SystemService
/// UpdateSettings) and uses them from the next job on; a failure keeps the
/// current ones and is logged.
async fn follow_providers(pool: &db::Pool, models: &Live) {
    let read = async {
        let mut conn = pool.get().await?;
        anyhow::Ok(provider::choices(&mut conn).await?)
    };
    match read.await.map(|(embedder, reranker)| models.apply(embedder, reranker)) {
        Ok(Ok(true)) => tracing::info!(
            embedder = models.embedder().model(),
            "an admin changed the providers; using them from the next job"
        ),
        Ok(Ok(false)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "an admin's choice of providers cannot be used; keeping the current ones"),
        Err(error) => tracing::warn!(error = format!("{error:#}"), "could not reread the providers"),
    }
}

/// Runs a worker until `shutdown` resolves, then drains and returns.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // First, so a model that cannot be loaded stops start-up before anything
    // registers; loading reads the weights, hence the blocking thread.
    if config.metrics_addr.is_some() {
        // Before any task records a metric.
        folio_core::metrics::recorder()?;
    }
    let models = config.models.clone();
    let embedder = tokio::task::spawn_blocking(move || embed::from_config(&models))
        .await
        .context("loading the embedding model")??;
    let models = Arc::new(Live::new(config.models.clone(), embedder)?);
    let pool = db::pool(&config.database_url, config.db_pool_size).context("database pool")?;
    let now = chrono::Utc::now();
    let me = worker::Worker {
        id: Uuid::new_v4(),
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        pid: std::process::id() as i32,
        version: folio_core::VERSION.to_owned(),
        started_at: now,
        last_seen_at: now,
        current_job: None,
        jobs_in_flight: 0,
        stopped_at: None,
    };
    // Registering doubles as the start-up check: it needs Postgres up and migrated.
    startup::wait_for("postgres", config.startup_timeout, || async {
        let mut conn = pool.get().await?;
        worker::register(&mut conn, &me).await?;
        anyhow::Ok(())
    })
    .await?;
    startup::wait_for("rabbitmq", config.startup_timeout, || async {
        let connection = lapin::Connection::connect(&config.amqp_url, Default::default()).await?;
        let _ = connection.close(200, "start-up check".into()).await;
        anyhow::Ok(())
    })
    .await?;
    let cache = startup::wait_for("redis", config.startup_timeout, || {
        Cache::connect(&config.redis_url, &config.redis_prefix)
    })
    .await?;
    let blobs = Blobs::open(&config.documents.blob_url, &config.documents.blob_options)
        .map_err(|e| anyhow::anyhow!("setting FOLIO_BLOB_URL: {e}"))?;
    follow_providers(&pool, &models).await;
    tracing::info!(worker_id = %me.id, host = %me.host, pid = me.pid, embedder = models.embedder().model(), "folio-worker started");

    let cancel = CancellationToken::new();
    let metrics_task = match config.metrics_addr {
        Some(addr) => Some(folio_core::metrics::serve(addr, Arc::new(PoolSampler(pool.clone())), cancel.clone()).await?),
        None => None,
    };
    let activity = Arc::new(Activity::default());
    let heartbeat = tokio::spawn(activity::heartbeat(
        pool.clone(),
        cache.clone(),
        activity::Beat {
            worker_id: me.id,
            interval: config.heartbeat_interval,
            lease: config.lease,
        },
        activity.clone(),
        cancel.clone(),
    ));
    let ocr = Arc::new(ocr::Ocr::new(config.documents.ocr.clone()));
    if let Err(error) = ocr.check().await {
        tracing::warn!(
            error = format!("{error:#}"),
            "OCR is not available on this worker: scanned pages and images fail their tries here"
        );
    }
    let consumer = Arc::new(Consumer::new(
        config.amqp_url.clone(),
        Topology::new(&config),
        consumer::Limits {
            prefetch: config.worker_concurrency,
            grace: config.shutdown_grace,
            consumer_timeout: config.consumer_timeout,
        },
        JobContext {
            pool: pool.clone(),
            worker_id: me.id,
            lease_ttl: config.lease,
            blobs,
            cache,
            documents: config.documents.clone(),
            models: models.clone(),
            sandbox: sandbox::Sandbox::from_config(&config.documents)?,
            ocr: ocr.clone(),
        },
        activity.clone(),
    ));
    let consuming = tokio::spawn(consumer.run(cancel.clone()));
    let following = tokio::spawn({
        let (pool, cancel, every) = (pool.clone(), cancel.clone(), config.settings_refresh);
        async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => follow_providers(&pool, &models).await,
                }
            }
        }
    });
    let building = tokio::spawn(segments::run(
        segments::Settings::new(&config.database_url, &config.documents),
        cancel.clone(),
    ));

    shutdown.await;
    tracing::info!("shutting down");
    cancel.cancel();
    consuming.await.context("consumer task")?;
    heartbeat.await.context("heartbeat task")?;
    building.await.context("segment builder task")?;
    following.await.context("providers task")?;
    if let Some(task) = metrics_task {
        task.await.context("metrics task")?;
    }
    let mut conn = pool.get().await?;
    worker::mark_stopped(&mut conn, me.id).await?;
    tracing::info!("folio-worker stopped");
    Ok(())
}

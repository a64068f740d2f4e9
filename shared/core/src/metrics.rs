//! Prometheus metrics: every name folio records, described once here, and the
//! `/metrics` endpoint both binaries serve on `FOLIO_METRICS_ADDR` (off when
//! unset).
//!
//! Code records through the `metrics` facade's macros with the names below;
//! `metrics-exporter-prometheus` keeps them and writes the text format. What is
//! a count of rows somewhere (documents by state, the outbox, the queue) is
//! not recorded as it changes but read when Prometheus scrapes: each binary
//! hands [`serve`] a [`Sampler`] that sets those gauges first, bounded by
//! [`SAMPLE_TIMEOUT`] (a scrape answers with the last values rather than
//! hanging on a database that does not answer).
//!
//! Names follow Prometheus' conventions: `folio_` first, base units
//! (`_seconds`), `_total` on counters, and only labels with a small fixed set
//! of values (a service and method, a state, a job kind; never a document id).
//!
//! The recorder is process-wide (the facade's global): two servers in one
//! process, as some tests start them, record into and serve the same set.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use anyhow::Context as _;
use futures_util::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

// The api-server's.
/// Calls answered, by `service`, `method` and gRPC `code`.
pub const RPC_REQUESTS: &str = "folio_rpc_requests_total";
/// Call durations (a stream's: until it ends), by `service` and `method`.
pub const RPC_DURATION: &str = "folio_rpc_duration_seconds";
/// Watch streams open now.
pub const WATCH_STREAMS: &str = "folio_watch_streams_open";
/// Outbox rows not yet confirmed by the broker.
pub const OUTBOX_PENDING: &str = "folio_outbox_pending_rows";
/// Age of the oldest of them (0 when there is none).
pub const OUTBOX_OLDEST: &str = "folio_outbox_oldest_pending_age_seconds";
/// From publishing an outbox row to the broker's confirm.
pub const PUBLISH_CONFIRM: &str = "folio_outbox_publish_confirm_seconds";
/// Documents by `state`.
pub const DOCUMENTS: &str = "folio_documents";
/// Chunks of READY documents not yet in an approximate (HNSW) index.
pub const INDEX_BACKLOG: &str = "folio_index_backlog_chunks";
/// Messages ready in a queue, by `queue` (process, retry, dead_letter).
pub const QUEUE_MESSAGES: &str = "folio_queue_messages";
/// Consumers of a queue, by `queue`.
pub const QUEUE_CONSUMERS: &str = "folio_queue_consumers";
/// Audit rows written to Postgres.
pub const AUDIT_WRITTEN: &str = "folio_audit_rows_written_total";
/// Audit rows whose call waited for room in the writer's buffer.
pub const AUDIT_DELAYED: &str = "folio_audit_rows_delayed_total";
/// Audit rows that went to the spill file, to be written once Postgres
/// takes rows again.
pub const AUDIT_SPILLED: &str = "folio_audit_rows_spilled_total";
/// Audit rows lost (neither written nor spilled).
pub const AUDIT_LOST: &str = "folio_audit_rows_lost_total";
/// Redis subscriptions re-established after being lost (the live notices).
pub const REDIS_RECONNECTS: &str = "folio_redis_reconnects_total";

// The worker's.
/// Jobs ended, by `kind` and `outcome`.
pub const JOBS: &str = "folio_jobs_total";
/// Jobs running now in this worker.
pub const JOBS_IN_FLIGHT: &str = "folio_jobs_in_flight";
/// Pipeline stage durations, by `stage` (PARSE, CHUNK, EMBED, INDEX).
pub const STAGE_DURATION: &str = "folio_stage_duration_seconds";

// Both.
/// Connections of the database pool, by `state` (in_use, idle).
pub const DB_POOL_CONNECTIONS: &str = "folio_db_pool_connections";
/// Callers waiting for a database connection now.
pub const DB_POOL_WAITING: &str = "folio_db_pool_waiting";
/// Connections to RabbitMQ made after the first (the relay's or consumer's).
pub const RABBITMQ_RECONNECTS: &str = "folio_rabbitmq_reconnects_total";

/// How long a scrape waits for the sampler before answering with what it has.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Histogram buckets, in seconds: 1 ms to 5 min.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Sets the gauges that are read rather than recorded, just before a scrape.
pub trait Sampler: Send + Sync + 'static {
    fn sample(&self) -> BoxFuture<'_, ()>;
}

static RECORDER: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The process's recorder, installed (and every metric described) by the
/// first call.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    let mut installed = RECORDER.lock().expect("metrics recorder lock");
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Serves `GET /metrics` on `addr` until `cancel` fires: `sampler` runs
/// first, then the recorder's text. Returns once listening.
pub async fn serve(addr: SocketAddr, sampler: Arc<dyn Sampler>, cancel: CancellationToken) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let handle = recorder()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("setting FOLIO_METRICS_ADDR: cannot listen on {addr}"))?;
    let address = listener.local_addr()?;
    let state = Scrape { handle, sampler };
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state.clone());
    tracing::info!(%address, "metrics served at /metrics");
    Ok(tokio::spawn(async move {
        // Histograms hold their samples until upkeep folds them in.
        let upkeep = {
            let cancel = cancel.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                while tokio::select! { _ = every.tick() => true, () = cancel.cancelled() => false } {
                    state.handle.run_upkeep();
                }
            }
        };
        let served = axum::serve(listener, router).with_graceful_shutdown(cancel.cancelled_owned());
        let (served, ()) = tokio::join!(served, upkeep);
        if let Err(error) = served {
            tracing::warn!(%error, "the metrics endpoint stopped");
        }
    }))
}

/// Sets the database pool's gauges: `size` connections open, `idle` of them
/// free, `waiting` callers waiting for one.
pub fn record_pool(size: usize, idle: usize, waiting: usize) {
    ::metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(size.saturating_sub(idle) as f64);
    ::metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    ::metrics::gauge!(DB_POOL_WAITING).set(waiting as f64);
}

/// One more on a gauge for as long as it lives: a stream open, a job running.
#[derive(Debug)]
pub struct Held(&'static str);

impl Held {
    pub fn new(gauge: &'static str) -> Self {
        ::metrics::gauge!(gauge).increment(1.0);
        Held(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        ::metrics::gauge!(self.0).decrement(1.0);
    }
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    sampler: Arc<dyn Sampler>,
}

async fn scrape(axum::extract::State(state): axum::extract::State<Scrape>) -> impl axum::response::IntoResponse {
    if tokio::time::timeout(SAMPLE_TIMEOUT, state.sampler.sample()).await.is_err() {
        tracing::warn!(timeout = ?SAMPLE_TIMEOUT, "metrics: sampling took too long; answering with the last values");
    }
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.handle.render(),
    )
}

/// The help text and unit of every metric (promtool wants help on each).
fn describe() {
    describe_counter!(
        RPC_REQUESTS,
        Unit::Count,
        "gRPC calls answered, by service, method and status code."
    );
    describe_histogram!(
        RPC_DURATION,
        Unit::Seconds,
        "gRPC call durations (a stream's until it ends), by service and method."
    );
    describe_gauge!(WATCH_STREAMS, Unit::Count, "Watch streams open now.");
    describe_gauge!(OUTBOX_PENDING, Unit::Count, "Outbox rows not yet confirmed by RabbitMQ.");
    describe_gauge!(
        OUTBOX_OLDEST,
        Unit::Seconds,
        "How long rows have waited in the outbox with none published: since the oldest unsent row, or the last publish if later (0 when none wait)."
    );
    describe_histogram!(
        PUBLISH_CONFIRM,
        Unit::Seconds,
        "Time from publishing an outbox row to RabbitMQ's confirm."
    );
    describe_gauge!(DOCUMENTS, Unit::Count, "Documents by state.");
    describe_gauge!(
        INDEX_BACKLOG,
        Unit::Count,
        "Chunks of READY documents not yet in an HNSW index (found by exact scan until they are)."
    );
    describe_gauge!(QUEUE_MESSAGES, Unit::Count, "Messages ready in a queue.");
    describe_gauge!(QUEUE_CONSUMERS, Unit::Count, "Consumers of a queue.");
    describe_counter!(AUDIT_WRITTEN, Unit::Count, "Audit rows written to Postgres.");
    describe_counter!(
        AUDIT_DELAYED,
        Unit::Count,
        "Audit rows whose call waited for room in the writer's buffer."
    );
    describe_counter!(
        AUDIT_SPILLED,
        Unit::Count,
        "Audit rows spilled to disk while Postgres did not take them, to be written later."
    );
    describe_counter!(AUDIT_LOST, Unit::Count, "Audit rows neither written nor spilled.");
    describe_counter!(
        REDIS_RECONNECTS,
        Unit::Count,
        "Redis subscriptions for live notices re-established after being lost."
    );
    describe_counter!(JOBS, Unit::Count, "Jobs ended, by kind and outcome.");
    describe_gauge!(JOBS_IN_FLIGHT, Unit::Count, "Jobs this worker runs now.");
    describe_histogram!(STAGE_DURATION, Unit::Seconds, "Pipeline stage durations, by stage.");
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        Unit::Count,
        "Connections of this process's database pool, by state."
    );
    describe_gauge!(DB_POOL_WAITING, Unit::Count, "Callers waiting for a database connection now.");
    describe_counter!(RABBITMQ_RECONNECTS, Unit::Count, "Connections to RabbitMQ made after the first.");
}

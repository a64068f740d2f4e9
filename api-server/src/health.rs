//! Live checks of Postgres, RabbitMQ and Redis: answered by `GetInfo` (in
//! [`Info`], GetInfo's whole answer in domain terms), and polled to drive
//! `grpc.health.v1` (SERVING only while all three answer).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use folio_core::{cache::Cache, queue::Topology};
use folio_db as db;
use lapin::options::QueueDeclareOptions;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

use crate::{audit::AuditCounts, broker::BrokerLink, watch::stats::HubStats};

/// How long one dependency check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The gRPC services whose health follows the dependencies ("" is the server).
pub const SERVICES: [&str; 2] = ["", "folio.v1.SystemService"];

/// The result of checking one dependency.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub up: bool,
    pub latency: Duration,
    pub error: Option<String>,
}

/// What GetInfo reports: this server's version, when it started and for how
/// long it has run, the dependencies' checks and the watch hub's counters.
#[derive(Clone, Debug)]
pub struct Info {
    pub version: &'static str,
    pub started_at: DateTime<Utc>,
    pub uptime: Duration,
    /// In the order postgres, rabbitmq, redis.
    pub dependencies: [Check; 3],
    pub watch: HubStats,
    /// What became of the audit rows this server recorded.
    pub audit: AuditCounts,
}

/// What the checks need to reach each dependency.
#[derive(Clone)]
pub struct Dependencies {
    pub pool: db::Pool,
    pub cache: Cache,
    pub broker: Arc<BrokerLink>,
    pub topology: Topology,
}

impl Dependencies {
    /// Checks all three at once; the result is in the order postgres,
    /// rabbitmq, redis.
    pub async fn check_all(&self) -> [Check; 3] {
        let (postgres, rabbitmq, redis) = tokio::join!(
            timed("postgres", db::ping(&self.pool)),
            timed("rabbitmq", self.check_broker()),
            timed("redis", async { Ok(self.cache.ping().await?) }),
        );
        [postgres, rabbitmq, redis]
    }

    /// A round trip on the relay's connection: open a channel and passively
    /// declare the job queue.
    async fn check_broker(&self) -> anyhow::Result<()> {
        let Some(connection) = self.broker.current() else {
            let why = self.broker.last_error().unwrap_or_else(|| "not connected yet".into());
            anyhow::bail!("not connected: {why}");
        };
        let channel = connection.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let result = channel
            .queue_declare(self.topology.process_queue().into(), passive, Default::default())
            .await;
        let _ = channel.close(200, "check done".into()).await;
        result?;
        Ok(())
    }
}

async fn timed(name: &'static str, check: impl Future<Output = anyhow::Result<()>>) -> Check {
    let start = Instant::now();
    let outcome = timeout(CHECK_TIMEOUT, check).await;
    let latency = start.elapsed();
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(folio_core::startup::one_line(&format!("{error:#}"))),
        Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
    };
    Check {
        name,
        up: error.is_none(),
        latency,
        error,
    }
}

/// Polls the dependencies every `interval` and sets the health status of
/// [`SERVICES`], until `cancel` fires.
pub async fn poll(dependencies: Dependencies, reporter: HealthReporter, interval: Duration, cancel: CancellationToken) {
    let mut serving = None;
    loop {
        let checks = dependencies.check_all().await;
        let all_up = checks.iter().all(|c| c.up);
        if serving != Some(all_up) {
            if all_up {
                tracing::info!("all dependencies answer: SERVING");
            } else {
                for check in checks.iter().filter(|c| !c.up) {
                    tracing::warn!(
                        dependency = check.name,
                        error = check.error.as_deref().unwrap_or(""),
                        "dependency down: NOT_SERVING"
                    );
                }
            }
            set_status(&reporter, all_up).await;
            serving = Some(all_up);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Sets every service in [`SERVICES`] to SERVING or NOT_SERVING.
pub async fn set_status(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

//! Live checks of Postgres, RabbitMQ and Redis: answered by `GetInfo` (in
//! [`Info`], GetInfo's whole answer in domain terms), and polled to drive
//! `grpc.health.v1`.
//!
//! Readiness means "this server can do its job". Every RPC needs Postgres, so
//! the server ("") and each `folio.v1` service are SERVING exactly while
//! Postgres answers. RabbitMQ and Redis are not needed to accept work: with the
//! broker down uploads wait in the outbox, with Redis down watch streams poll
//! Postgres. Their loss leaves the server SERVING but degraded, which `GetInfo`
//! reports and each dependency's own health entry (`folio.dependency.<name>`)
//! shows, so a load balancer keeps sending uploads exactly when the outbox is
//! there to take them.

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

/// The gRPC services whose health follows Postgres ("" is the server).
pub const SERVICES: [&str; 7] = [
    "",
    "folio.v1.SystemService",
    "folio.v1.AuthService",
    "folio.v1.UserService",
    "folio.v1.DocumentService",
    "folio.v1.SearchService",
    "folio.v1.SharingService",
];

/// The dependencies, in the order [`Dependencies::check_all`] returns them.
pub const DEPENDENCIES: [&str; 3] = ["postgres", "rabbitmq", "redis"];

/// The health entry that shows one dependency's own state.
pub fn dependency_service(name: &str) -> String {
    format!("folio.dependency.{name}")
}

/// The result of checking one dependency.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub up: bool,
    pub latency: Duration,
    pub error: Option<String>,
}

/// What GetInfo reports: this server's version, when it started and for how
/// long it has run, the dependencies' checks and what they mean, the watch
/// hub's counters and the audit writer's.
#[derive(Clone, Debug)]
pub struct Info {
    pub version: &'static str,
    pub started_at: DateTime<Utc>,
    pub uptime: Duration,
    /// In the order postgres, rabbitmq, redis.
    pub dependencies: [Check; 3],
    /// What the checks mean for readiness.
    pub readiness: Readiness,
    pub watch: HubStats,
    /// What became of the audit rows this server recorded.
    pub audit: AuditCounts,
    /// Chunks not yet in the approximate indexes (the HNSW graph and the RUM
    /// keyword index): searchable by the exact scan, not yet "fully indexed".
    /// `None` when Postgres did not answer the count in time.
    pub index_backlog: Option<i64>,
    /// Bytes of WAL the search replica has still to replay; `None` without
    /// one, or when either server did not answer in time.
    pub search_replica_lag: Option<i64>,
}

/// What the checks need to reach each dependency.
#[derive(Clone)]
pub struct Dependencies {
    pub pool: db::Pool,
    /// Where searches read, for the replica's lag.
    pub search_reads: crate::search::reads::Reads,
    pub cache: Cache,
    pub broker: Arc<BrokerLink>,
    pub topology: Topology,
}

impl Dependencies {
    /// Checks all three at once; the result is in the order of
    /// [`DEPENDENCIES`].
    pub async fn check_all(&self) -> [Check; 3] {
        let [postgres, rabbitmq, redis] = DEPENDENCIES;
        let (postgres, rabbitmq, redis) = tokio::join!(
            timed(postgres, db::ping(&self.pool)),
            timed(rabbitmq, self.check_broker()),
            timed(redis, async { Ok(self.cache.ping().await?) }),
        );
        [postgres, rabbitmq, redis]
    }

    /// How many chunks are in no sealed segment yet (found by an exact scan,
    /// not an approximate index), or `None` when Postgres does not answer
    /// within a check's timeout.
    pub async fn index_backlog(&self) -> Option<i64> {
        let count = async {
            let mut conn = self.pool.get().await.ok()?;
            db::models::segment::open_count(&mut conn).await.ok()
        };
        timeout(CHECK_TIMEOUT, count).await.ok().flatten()
    }

    /// How far the search replica is behind the primary, in bytes of WAL.
    pub async fn search_replica_lag(&self) -> Option<i64> {
        timeout(CHECK_TIMEOUT, self.search_reads.replica_lag_bytes()).await.ok().flatten()
    }

    /// A round trip on the relay's connection: open a channel and passively
    /// declare the job queue.
    async fn check_broker(&self) -> anyhow::Result<()> {
        self.queue_depth(&self.topology.process_queue()).await.map(|_| ())
    }

    /// The messages ready in `queue` and its consumers, read on the relay's
    /// connection by a passive declare.
    pub async fn queue_depth(&self, queue: &str) -> anyhow::Result<(u32, u32)> {
        let Some(connection) = self.broker.current() else {
            let why = self.broker.last_error().unwrap_or_else(|| "not connected yet".into());
            anyhow::bail!("not connected: {why}");
        };
        let channel = connection.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let result = channel.queue_declare(queue.into(), passive, Default::default()).await;
        let _ = channel.close(200, "check done".into()).await;
        let declared = result?;
        Ok((declared.message_count(), declared.consumer_count()))
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

/// What a round of checks means for readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Postgres answers: the server can do its job.
    pub serving: bool,
    /// A dependency other than Postgres is down: work is accepted and waits.
    pub degraded: bool,
}

impl Readiness {
    pub fn of(checks: &[Check; 3]) -> Readiness {
        let [postgres, rest @ ..] = checks;
        Readiness {
            serving: postgres.up,
            degraded: rest.iter().any(|c| !c.up),
        }
    }
}

/// Polls the dependencies every `interval` and sets the health status of
/// [`SERVICES`] and of each dependency's entry, until `cancel` fires.
pub async fn poll(dependencies: Dependencies, reporter: HealthReporter, interval: Duration, cancel: CancellationToken) {
    let mut last: Option<[bool; 3]> = None;
    loop {
        let checks = dependencies.check_all().await;
        let ups = checks.each_ref().map(|c| c.up);
        if last != Some(ups) {
            let readiness = Readiness::of(&checks);
            for (i, check) in checks.iter().enumerate() {
                let was_up = last.map(|ups| ups[i]);
                match (check.up, was_up) {
                    (true, Some(false)) => tracing::info!(dependency = check.name, "dependency answers again"),
                    (false, None | Some(true)) => tracing::warn!(
                        dependency = check.name,
                        error = check.error.as_deref().unwrap_or(""),
                        serving = readiness.serving,
                        "dependency down"
                    ),
                    _ => {}
                }
                reporter.set_service_status(dependency_service(check.name), status(check.up)).await;
            }
            match readiness {
                Readiness { serving: false, .. } => tracing::warn!("Postgres is down: NOT_SERVING"),
                Readiness { degraded: true, .. } => tracing::warn!("SERVING, degraded: work is accepted and waits"),
                _ => tracing::info!("all dependencies answer: SERVING"),
            }
            set_status(&reporter, readiness.serving).await;
            last = Some(ups);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

fn status(serving: bool) -> tonic_health::ServingStatus {
    if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    }
}

/// Sets every service in [`SERVICES`] to SERVING or NOT_SERVING.
pub async fn set_status(reporter: &HealthReporter, serving: bool) {
    for service in SERVICES {
        reporter.set_service_status(service, status(serving)).await;
    }
}

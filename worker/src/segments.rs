//! The segment builder. INDEX writes chunks into the open segment (past the
//! last sealed one), where searches scan them exactly, so a document becomes
//! READY at the speed of plain inserts. This task turns the open segment into
//! sealed ones with HNSW graphs and RUM indexes built in bulk (one `CREATE
//! INDEX CONCURRENTLY` each, several times faster than inserting rows one by
//! one into a graph), and merges runs of same-tier segments so searches scan
//! few of them (see `folio_db::models::segment`). Every worker runs one; the
//! builder's advisory lock lets one build at a time, and another worker's
//! takes over when that one stops.
//!
//! Each step: seal the open segment once it holds `FOLIO_SEGMENT_CHUNKS`, or
//! once it has not grown for `FOLIO_SEGMENT_QUIET_SECS` (so a pause in
//! ingestion leaves everything fully indexed soon after); else merge, if a
//! tier has a run of [`FAN_IN`]. After each, the planner's statistics are
//! brought up to date: a new segment's id range lies past what the last
//! ANALYZE saw, and with too few rows estimated there the planner scans
//! the range exactly instead of through its graph (measured: 140 ms instead
//! of 27 ms for a search over three segments of 44,000 chunks).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use folio_core::config::DocumentsConfig;
use folio_db::models::segment::{self, Policy, Segment};
use tokio_util::sync::CancellationToken;

/// Segments merged at once, as Lucene's tiered policy merges about ten: a
/// merge rebuilds its chunks' graph, so each chunk is built once per tier
/// (three tiers up to ~260,000 chunks at 4,096 per seal), and a search scans
/// at most `FAN_IN - 1` segments per tier.
pub const FAN_IN: usize = 4;
/// How often the builder looks at the open segment, and how often a worker
/// that does not hold the lock tries to take it.
const LOOK: Duration = Duration::from_millis(250);
/// The pause after a failure (Postgres away, a build refused).
const RETRY: Duration = Duration::from_secs(2);

/// What the builder is configured to do.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub policy: Policy,
    pub quiet: Duration,
    pub build_memory_mb: u64,
}

impl Settings {
    pub fn new(database_url: &str, documents: &DocumentsConfig) -> Self {
        Settings {
            database_url: database_url.to_owned(),
            policy: Policy {
                seal_at: documents.segment_chunks,
                fan_in: FAN_IN,
            },
            quiet: documents.segment_quiet,
            build_memory_mb: documents.segment_build_memory_mb,
        }
    }
}

/// Builds segments while this worker holds the builder's lock, until
/// `cancel`. A build in progress is abandoned (its session ends, Postgres
/// stops it, and the next builder drops what it left).
pub async fn run(settings: Settings, cancel: CancellationToken) {
    loop {
        let led = tokio::select! {
            () = cancel.cancelled() => return,
            led = lead(&settings) => led,
        };
        if let Err(error) = led {
            tracing::warn!(error = format!("{error:#}"), "segment builder failed; trying again");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Waits for the lock on a session of its own, then builds until an error.
async fn lead(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(&settings.database_url).await.context("connecting")?;
    // Builds take as long as they take; a session whose client is gone
    // (this worker stopped mid-build) is noticed and ended within a second.
    for setting in [
        format!("SET maintenance_work_mem = '{}MB'", settings.build_memory_mb),
        "SET statement_timeout = 0".to_owned(),
        "SET client_connection_check_interval = '1s'".to_owned(),
    ] {
        diesel::sql_query(setting).execute(&mut conn).await?;
    }
    while !segment::try_lead(&mut conn).await? {
        tokio::time::sleep(LOOK).await;
    }
    tracing::info!("this worker builds the search segments");
    drop_orphans(&mut conn).await?;
    let mut open = Watch::default();
    loop {
        match next_step(&mut conn, settings, &mut open).await? {
            Some(Step::Seal(sealed)) => {
                let started = Instant::now();
                segment::build(&mut conn, &sealed).await?;
                segment::record_sealed(&mut conn, &sealed).await?;
                segment::analyze(&mut conn).await?;
                tracing::info!(
                    lo = sealed.lo,
                    hi = sealed.hi,
                    level = sealed.level,
                    took_ms = started.elapsed().as_millis() as u64,
                    "sealed a segment"
                );
            }
            Some(Step::Merge(run, merged)) => {
                let started = Instant::now();
                segment::build(&mut conn, &merged).await?;
                segment::record_merged(&mut conn, &run, &merged).await?;
                segment::analyze(&mut conn).await?;
                tracing::info!(
                    lo = merged.lo,
                    hi = merged.hi,
                    level = merged.level,
                    segments = run.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "merged segments"
                );
                drop_orphans(&mut conn).await?;
            }
            None => tokio::time::sleep(LOOK).await,
        }
    }
}

/// Drops the indexes of merged-away segments and of builds cut short.
async fn drop_orphans(conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
    for index in segment::drop_orphans(conn).await? {
        tracing::info!(index, "dropped a segment index no segment uses");
    }
    Ok(())
}

enum Step {
    Seal(Segment),
    Merge(Vec<Segment>, Segment),
}

/// The newest chunk id, and since when it has been the newest (as far as
/// the builder's looks tell; a build between two looks counts as quiet if
/// the newest did not change across it).
#[derive(Default)]
struct Watch {
    newest: Option<(i64, Instant)>,
}

impl Watch {
    /// How long `newest` has been the newest chunk.
    fn unchanged_for(&mut self, newest: i64) -> Duration {
        match self.newest {
            Some((seen, since)) if seen == newest => since.elapsed(),
            _ => {
                self.newest = Some((newest, Instant::now()));
                Duration::ZERO
            }
        }
    }
}

async fn next_step(conn: &mut AsyncPgConnection, settings: &Settings, watch: &mut Watch) -> anyhow::Result<Option<Step>> {
    let policy = settings.policy;
    let sealed = segment::sealed(conn).await?;
    let from = segment::open_from(&sealed);
    let open = segment::open(conn, from, policy.seal_at).await?;
    let quiet = watch.unchanged_for(open.newest) >= settings.quiet;
    if open.chunks >= policy.seal_at || (open.chunks > 0 && quiet) {
        return Ok(Some(Step::Seal(policy.seal(from, open.newest))));
    }
    Ok(policy.next_merge(&sealed).map(|(run, merged)| Step::Merge(run, merged)))
}

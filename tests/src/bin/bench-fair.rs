//! Fair share under a bulk import, printed as Markdown (BENCHMARKS.md keeps
//! the figures). Run with `scripts/bench fair` (release builds, real servers).
//!
//! Three members. A uploads `FOLIO_BENCH_A` documents (default 5,000) as fast
//! as 16 callers can; 5 s after A's first upload, B and C each upload ten
//! (mixed sizes, 1 to 32 KB, each owner's ten at once). Every document is
//! prose of its own (no two alike, so none is a duplicate), ~5 KB for A.
//!
//! For 1, 2 and 3 workers (each `FOLIO_WORKER_CONCURRENCY=4`), three runs,
//! each on a database and queues of its own:
//! - idle: B's and C's ten alone, uploaded at the same moment, no import;
//! - alone: A's import alone;
//! - shared: A's import, and B's and C's ten 5 s after it started.
//!
//! Then with one worker: shared with C at weight 2 (UpdateUser
//! `share_weight`), and shared with the queue unbounded
//! (`FOLIO_SCHEDULER_AHEAD=100000`: the relay releases in commit order, as
//! before fair share).
//!
//! A document's time is its `completed_at` (READY) less its `created_at`
//! (stored), both the server's clock. A's total is from its first document
//! stored to its last READY. `FOLIO_BENCH_RUNS=idle,alone,alone-fifo,shared,weight,fifo`
//! and `FOLIO_BENCH_WORKERS=1,2,3` choose what runs; `alone-fifo` is A's
//! import alone in commit order (what fair share costs an import), and
//! `FOLIO_BENCH_AHEAD` and `FOLIO_BENCH_POLL_MS` set `FOLIO_SCHEDULER_AHEAD`
//! and `FOLIO_SCHEDULER_POLL_MS` for the fair runs.

use std::{process::Stdio, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use diesel_async::RunQueryDsl as _;
use folio_proto::v1::{
    CreateDocumentRequest, DocumentMetadata, RegisterRequest, UpdateUserRequest, User, auth_service_client::AuthServiceClient,
    document_service_client::DocumentServiceClient, user_service_client::UserServiceClient,
};
use folio_tests::{Bearer, bench::bench_env, bench::stop, spawn_api_process};
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;

const CALLERS: usize = 16;
const SMALL_OWNERS_DOCUMENTS: usize = 10;
/// The small owners' documents, in words (about 6 bytes each): 1 to 32 KB.
const MIXED_WORDS: [usize; SMALL_OWNERS_DOCUMENTS] = [170, 340, 680, 1360, 2720, 5440, 680, 1360, 340, 2720];
/// A's documents, in words: about 5 KB each.
const A_WORDS: usize = 850;
const B_AFTER: Duration = Duration::from_secs(5);
const RUN_LIMIT: Duration = Duration::from_secs(1800);
/// A window no import fills: the relay releases in commit order, as before
/// fair share.
const COMMIT_ORDER: &str = "100000";

type Client = DocumentServiceClient<InterceptedService<tonic::transport::Channel, Bearer>>;

/// What one owner's documents took.
#[derive(Debug, Clone, Default)]
struct Owner {
    /// Upload to READY of each document, sorted.
    times: Vec<Duration>,
    /// First stored to last READY.
    total: Duration,
    failed: i64,
}

impl Owner {
    fn p(&self, q: f64) -> Duration {
        if self.times.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.times.len() as f64 * q).ceil() as usize).clamp(1, self.times.len()) - 1;
        self.times[index]
    }
}

#[derive(Debug, Clone, Default)]
struct Run {
    a: Option<Owner>,
    b: Option<Owner>,
    c: Option<Owner>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Idle,
    Alone,
    Shared,
}

/// Prose of `words` words that no other document has: its name opens it and
/// the vocabulary turns with `seed`.
fn prose(name: &str, words: usize, seed: usize) -> Vec<u8> {
    const VOCABULARY: [&str; 24] = [
        "heron",
        "marsh",
        "reed",
        "water",
        "rail",
        "tide",
        "estuary",
        "mud",
        "flight",
        "nest",
        "wader",
        "curlew",
        "godwit",
        "avocet",
        "stilt",
        "plover",
        "dunlin",
        "knot",
        "sanderling",
        "redshank",
        "greenshank",
        "whimbrel",
        "turnstone",
        "oystercatcher",
    ];
    let mut out = format!("{name}\n\n");
    for i in 0..words {
        out.push_str(VOCABULARY[(i * 7 + i / 13 + seed * 5 + seed / 24) % VOCABULARY.len()]);
        out.push_str(if i % 60 == 59 { ".\n\n" } else { " " });
    }
    out.into_bytes()
}

fn upload(filename: String, content: Vec<u8>) -> CreateDocumentRequest {
    CreateDocumentRequest {
        metadata: Some(DocumentMetadata {
            filename,
            ..Default::default()
        }),
        content,
    }
}

/// Registers a member called `name`; its document client and id.
async fn member(channel: &tonic::transport::Channel, name: &str) -> (Client, String) {
    let session = AuthServiceClient::new(channel.clone())
        .register(RegisterRequest {
            email: format!("{name}-{}@bench.test", uuid::Uuid::new_v4().simple()),
            password: "a bench member's passphrase".into(),
            display_name: name.into(),
        })
        .await
        .expect("register")
        .into_inner();
    let id = session.user.expect("a user").id;
    (
        DocumentServiceClient::new(InterceptedService::new(channel.clone(), Bearer::new(&session.access_token))),
        id,
    )
}

/// Uploads the ten mixed documents of `owner` at once.
async fn upload_ten(client: &Client, owner: &str) {
    let uploads = MIXED_WORDS.iter().enumerate().map(|(i, words)| {
        let mut client = client.clone();
        let request = upload(format!("{owner}{i}.txt"), prose(&format!("{owner} note {i}"), *words, 100_000 + i));
        tokio::spawn(async move { client.create_document(request).await.expect("upload") })
    });
    for upload in uploads {
        upload.await.expect("upload task");
    }
}

/// Uploads A's `n` documents with [`CALLERS`] callers.
async fn import(client: &Client, n: usize) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let mut client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let request = upload(format!("a{i}.txt"), prose(&format!("import {i}"), A_WORDS, i));
                    client.create_document(request).await.expect("upload");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("caller");
    }
}

#[derive(diesel::QueryableByName)]
struct Done {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    completed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
}

/// `owner`'s documents once all `n` are READY or FAILED.
async fn settled(pool: &folio_db::Pool, owner: &str, n: usize, started: Instant) -> Owner {
    let owner_id: uuid::Uuid = owner.parse().expect("a user id");
    loop {
        let mut conn = pool.get().await.expect("a connection");
        let rows: Vec<Done> = diesel::sql_query("SELECT created_at, completed_at, state FROM documents WHERE owner_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(owner_id)
            .load(&mut conn)
            .await
            .expect("documents");
        drop(conn);
        let finished = rows.iter().filter(|r| r.state == "READY" || r.state == "FAILED").count();
        if rows.len() == n && finished == n {
            let mut times: Vec<Duration> = rows.iter().filter_map(|r| (r.completed_at? - r.created_at).to_std().ok()).collect();
            times.sort();
            let first = rows.iter().map(|r| r.created_at).min().expect("documents");
            let last = rows.iter().filter_map(|r| r.completed_at).max().expect("completed");
            return Owner {
                times,
                total: (last - first).to_std().unwrap_or_default(),
                failed: rows.iter().filter(|r| r.state == "FAILED").count() as i64,
            };
        }
        assert!(
            started.elapsed() < RUN_LIMIT,
            "{owner}: {finished} of {n} settled after {RUN_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn run(kind: Kind, workers: usize, a_documents: usize, c_weight: Option<i32>, ahead: Option<&str>) -> Run {
    let mut env = bench_env().await;
    // Members upload here, not only the admin.
    env.set("FOLIO_RATE_LIMIT_MEMBER", "1000000");
    if let Some(ahead) = ahead.map(str::to_owned).or_else(|| std::env::var("FOLIO_BENCH_AHEAD").ok()) {
        env.set("FOLIO_SCHEDULER_AHEAD", ahead);
    }
    if let Ok(poll) = std::env::var("FOLIO_BENCH_POLL_MS") {
        env.set("FOLIO_SCHEDULER_POLL_MS", poll);
    }
    let api = spawn_api_process(&env).await;
    let mut fleet: Vec<_> = (0..workers)
        .map(|_| {
            env.command("folio-worker")
                .env("FOLIO_WORKER_CONCURRENCY", "4")
                .stdout(Stdio::null())
                .spawn()
                .expect("folio-worker")
        })
        .collect();
    let pool = env.pool();
    let (a, a_id) = member(&api.channel, "a").await;
    let (b, b_id) = member(&api.channel, "b").await;
    let (c, c_id) = member(&api.channel, "c").await;
    if let Some(weight) = c_weight {
        UserServiceClient::new(InterceptedService::new(api.channel.clone(), Bearer::new(&api.admin_token)))
            .update_user(UpdateUserRequest {
                user: Some(User {
                    id: c_id.clone(),
                    share_weight: Some(weight),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["share_weight".into()],
                }),
            })
            .await
            .expect("share_weight");
    }
    // The workers are up once they have declared their consumers.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    let mut result = Run::default();
    let importing = (kind != Kind::Idle).then(|| {
        let a = a.clone();
        tokio::spawn(async move { import(&a, a_documents).await })
    });
    if kind != Kind::Alone {
        if kind == Kind::Shared {
            tokio::time::sleep_until(started + B_AFTER).await;
        }
        tokio::join!(upload_ten(&b, "b"), upload_ten(&c, "c"));
        result.b = Some(settled(&pool, &b_id, SMALL_OWNERS_DOCUMENTS, started).await);
        result.c = Some(settled(&pool, &c_id, SMALL_OWNERS_DOCUMENTS, started).await);
    }
    if let Some(importing) = importing {
        importing.await.expect("import");
        result.a = Some(settled(&pool, &a_id, a_documents, started).await);
    }
    for worker in &mut fleet {
        stop(worker).await;
    }
    let mut api = api;
    stop(&mut api.child).await;
    env.cleanup().await;
    result
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn ratio(x: Duration, of: Duration) -> String {
    if of.is_zero() {
        return "-".into();
    }
    format!("{:.2}×", x.as_secs_f64() / of.as_secs_f64())
}

/// A row of the totals table: the run's A against A alone.
fn total_row(label: &str, alone: Option<Duration>, total: Duration) -> String {
    format!(
        "| {label} | {} | {:.1} s | {} |",
        alone.map_or("-".into(), |t| format!("{:.1} s", t.as_secs_f64())),
        total.as_secs_f64(),
        alone.map_or("-".into(), |t| ratio(total, t)),
    )
}

fn small_row(label: &str, who: &str, owner: &Owner, idle: Option<&Owner>) -> String {
    let p99 = owner.p(0.99);
    format!(
        "| {label} | {who} | {} | {} | {} | {} |",
        ms(owner.p(0.5)),
        ms(p99),
        idle.map_or("-".into(), |idle| ms(idle.p(0.99))),
        idle.map_or("-".into(), |idle| ratio(p99, idle.p(0.99))),
    )
}

#[tokio::main]
async fn main() {
    let a_documents: usize = std::env::var("FOLIO_BENCH_A").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let runs = std::env::var("FOLIO_BENCH_RUNS").unwrap_or_else(|_| "idle,alone,alone-fifo,shared,weight,fifo".into());
    let worker_counts: Vec<usize> = std::env::var("FOLIO_BENCH_WORKERS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let wants = |name: &str| runs.split(',').any(|r| r.trim() == name);
    let began = Utc::now();

    let mut small = Vec::new();
    let mut totals = Vec::new();
    let mut failed = 0;
    for &workers in &worker_counts {
        let idle = if wants("idle") {
            Some(run(Kind::Idle, workers, a_documents, None, None).await)
        } else {
            None
        };
        let alone = if wants("alone") {
            Some(run(Kind::Alone, workers, a_documents, None, None).await)
        } else {
            None
        };
        let shared = if wants("shared") {
            Some(run(Kind::Shared, workers, a_documents, None, None).await)
        } else {
            None
        };
        let (idle_b, idle_c) = (idle.as_ref().and_then(|r| r.b.clone()), idle.as_ref().and_then(|r| r.c.clone()));
        let label = format!("{workers} worker{}", if workers == 1 { "" } else { "s" });
        if let Some(shared) = &shared {
            small.push(small_row(&label, "B", shared.b.as_ref().expect("B"), idle_b.as_ref()));
            small.push(small_row(&label, "C", shared.c.as_ref().expect("C"), idle_c.as_ref()));
            failed += shared.b.as_ref().map_or(0, |o| o.failed) + shared.c.as_ref().map_or(0, |o| o.failed);
        }
        let alone_total = alone.as_ref().and_then(|r| r.a.as_ref()).map(|a| a.total);
        if wants("alone-fifo") {
            let fifo = run(Kind::Alone, workers, a_documents, None, Some(COMMIT_ORDER)).await;
            let fifo_total = fifo.a.as_ref().expect("A").total;
            totals.push(total_row(
                &format!("{label}, A alone in commit order (before)"),
                alone_total,
                fifo_total,
            ));
        }
        if let Some(shared_a) = shared.as_ref().and_then(|r| r.a.as_ref()) {
            failed += shared_a.failed;
            totals.push(total_row(&format!("{label}, A with B and C"), alone_total, shared_a.total));
        }
        if workers == 1 {
            if wants("weight") {
                let weighted = run(Kind::Shared, 1, a_documents, Some(2), None).await;
                small.push(small_row(
                    "1 worker, C weight 2",
                    "B",
                    weighted.b.as_ref().expect("B"),
                    idle_b.as_ref(),
                ));
                small.push(small_row(
                    "1 worker, C weight 2",
                    "C",
                    weighted.c.as_ref().expect("C"),
                    idle_c.as_ref(),
                ));
                if let Some(a) = &weighted.a {
                    totals.push(total_row("1 worker, A with B and C, C weight 2", alone_total, a.total));
                }
            }
            if wants("fifo") {
                let fifo = run(Kind::Shared, 1, a_documents, None, Some(COMMIT_ORDER)).await;
                small.push(small_row(
                    "1 worker, commit order (before)",
                    "B",
                    fifo.b.as_ref().expect("B"),
                    idle_b.as_ref(),
                ));
                small.push(small_row(
                    "1 worker, commit order (before)",
                    "C",
                    fifo.c.as_ref().expect("C"),
                    idle_c.as_ref(),
                ));
                if let Some(a) = &fifo.a {
                    totals.push(total_row("1 worker, A with B and C in commit order (before)", alone_total, a.total));
                }
            }
        }
        eprintln!("bench-fair: {workers} worker(s) done");
    }

    println!(
        "Fair share: A imports {a_documents} documents (~5 KB) with {CALLERS} callers; {} s later B and C upload ten each (1 to 32 KB). \
         Runs from {} to {} UTC.\n",
        B_AFTER.as_secs(),
        began.format("%H:%M"),
        Utc::now().format("%H:%M")
    );
    println!("| fleet | owner | upload to READY p50 (ms) | p99 (ms) | p99 on an idle fleet (ms) | p99 / idle |");
    println!("|---|---|---|---|---|---|");
    for row in &small {
        println!("{row}");
    }
    println!("\n| fleet, run | A alone: first stored to last READY | the run's A | the run / A alone |");
    println!("|---|---|---|---|");
    for row in &totals {
        println!("{row}");
    }
    println!("\nDocuments FAILED: {failed}");
}

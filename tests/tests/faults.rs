//! The fault suite: folio as it runs in production (two folio-api processes,
//! three folio-workers, all real binaries), with its own RabbitMQ node and
//! Redis and Postgres behind a proxy, while uploads flow and a seeded
//! schedule breaks things: SIGKILL of a random worker every few seconds
//! (restarted after), SIGKILL of an api-server with uploads in flight, two
//! broker restarts (one clean, one SIGKILL), a 5 s cut of Postgres, a Redis
//! restart, duplicate publishes (outbox rows marked unsent again, as a relay
//! that crashed between the confirm and the mark would leave them) and a job
//! slower than the broker's consumer timeout.
//!
//! Then an accounting in the manner of Jepsen: every upload a caller saw
//! succeed is READY exactly once with one set of chunks (ordinals 0..n-1) and
//! is found by a keyword search; an upload that errored left nothing behind
//! or completed; every event log only moves forward (the lifecycle's table);
//! no document is left non-terminal and no message in any queue. It prints
//! the figures and asserts zero lost, duplicated, stuck and wrongly failed.
//!
//! `scripts/test` runs the short schedule (a few hundred documents, every
//! fault at least once); `scripts/chaos` runs it for a duration with a seed
//! (`FOLIO_CHAOS_SECS`, `FOLIO_CHAOS_SEED`, `FOLIO_CHAOS_DOCUMENTS`), and
//! RELIABILITY.md records its figures.
//!
//! Over 500 lines on purpose: the schedule, the callers and the accounting of
//! one run read best in one place.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use folio_db::documents::{lifecycle, state::State};
use folio_proto::v1::{
    CreateDocumentRequest, DocumentMetadata, SearchMode, SearchRequest, auth_service_client::AuthServiceClient,
    document_service_client::DocumentServiceClient, search_service_client::SearchServiceClient,
};
use folio_tests::{
    Authed, Bearer, TcpProxy, TestEnv,
    fake_model::{Fake, Reply, embeddings},
    nodes::{RabbitNode, RedisNode},
};
use tokio::process::Child;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// What a run does, from the environment (`scripts/chaos` sets it).
struct Settings {
    seed: u64,
    /// Uploads in all (the short schedule), or per fault cycle when `run_for`
    /// is set.
    documents: usize,
    callers: usize,
    /// Keep cycling through the faults for this long (`scripts/chaos`).
    run_for: Option<Duration>,
}

fn settings() -> Settings {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    Settings {
        seed: var("FOLIO_CHAOS_SEED").unwrap_or(7),
        documents: var("FOLIO_CHAOS_DOCUMENTS").unwrap_or(240) as usize,
        callers: var("FOLIO_CHAOS_CALLERS").unwrap_or(6) as usize,
        run_for: var("FOLIO_CHAOS_SECS").map(Duration::from_secs),
    }
}

/// A small seeded generator (xorshift64*): the schedule is the seed's.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The word in a document that a keyword search finds it by.
fn marker(index: usize) -> String {
    format!("zqmark{index:06}x")
}

/// A model server that answers at once, but takes 6 s for a batch holding
/// the slow job's word: longer than the node's consumer timeout (4 s).
const SLOW_WORD: &str = "slowjobword";

/// The bytes of upload `index`: mostly prose, every fifth a real HTML manual
/// page, each with its marker; upload 3 is the slow job.
fn document(index: usize, pages: &[(String, Vec<u8>)]) -> (String, Vec<u8>) {
    let mark = marker(index);
    if index % 5 == 4 && !pages.is_empty() {
        let (name, bytes) = &pages[index / 5 % pages.len()];
        let mut bytes = bytes.clone();
        bytes.extend_from_slice(format!("\n<p>{mark}</p>\n").as_bytes());
        return (format!("{index:06}-{name}"), bytes);
    }
    let slow = if index == 3 { SLOW_WORD } else { "" };
    let mut bytes = format!("Upload {index}\n\n{mark} {slow}\n\n").into_bytes();
    bytes.extend(folio_tests::prose(150 + index % 7 * 40));
    (format!("{index:06}-notes.txt"), bytes)
}

/// An api-server process on a port of its own, killed and restarted there.
struct Api {
    addr: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Api {
    async fn start(env: &TestEnv, logs: &std::path::Path, n: usize) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut api = Api {
            addr: format!("127.0.0.1:{port}"),
            child: None,
            log: logs.join(format!("api-{n}.log")),
        };
        api.spawn(env);
        api.wait_serving().await;
        api
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spawn(&mut self, env: &TestEnv) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = env
            .command("folio-api")
            .env("FOLIO_GRPC_ADDR", &self.addr)
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("folio-api");
        self.child = Some(child);
    }

    async fn wait_serving(&self) {
        let url = self.url();
        folio_tests::eventually(Duration::from_secs(180), &format!("folio-api at {url} SERVING"), || {
            let url = url.clone();
            async move {
                (folio_tests::health_status(&url, "").await == Some(tonic_health::pb::health_check_response::ServingStatus::Serving))
                    .then_some(())
            }
        })
        .await;
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// The workers, by slot: killed and started again.
struct Workers {
    slots: Vec<Option<Child>>,
    logs: PathBuf,
}

impl Workers {
    fn spawn(&mut self, env: &TestEnv, slot: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("worker-{slot}.log")))
            .unwrap();
        let child = env
            .command("folio-worker")
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("folio-worker");
        self.slots[slot] = Some(child);
    }

    async fn kill(&mut self, slot: usize) {
        if let Some(mut child) = self.slots[slot].take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// Faults injected, by kind, and when the last one ended.
#[derive(Default)]
struct FaultLog {
    counts: BTreeMap<&'static str, u32>,
    last: Option<Instant>,
}

impl FaultLog {
    fn note(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
        self.last = Some(Instant::now());
        tracing::warn!(kind, "fault injected");
    }

    /// Counts a fault that was part of the load rather than injected at a
    /// moment (the slow job).
    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
    }
}

/// What a caller saw of one upload.
#[derive(Debug, Clone)]
struct Upload {
    index: usize,
    filename: String,
    key: Option<String>,
    /// The document id the api-server answered with; None if every try
    /// errored.
    confirmed: Option<String>,
}

fn authed(url: &str, token: &str) -> Authed {
    let channel = Channel::from_shared(url.to_owned()).unwrap().connect_lazy();
    InterceptedService::new(channel, Bearer::new(token))
}

/// One caller: uploads until the shared counter reaches `total` (or `stop`),
/// alternating api-servers; an upload with an idempotency key is retried
/// after an error, with the same key, up to a minute.
async fn caller(
    urls: Arc<Vec<String>>,
    token: String,
    next: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    pause: Duration,
    pages: Arc<Vec<(String, Vec<u8>)>>,
) -> Vec<Upload> {
    let clients: Vec<DocumentServiceClient<Authed>> = urls.iter().map(|u| DocumentServiceClient::new(authed(u, &token))).collect();
    let mut seen = Vec::new();
    loop {
        let index = next.fetch_add(1, Ordering::SeqCst);
        if index >= total.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
            return seen;
        }
        let (filename, content) = document(index, &pages);
        let key = index.is_multiple_of(2).then(|| format!("upload-{index}"));
        let mut confirmed = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        for attempt in 0.. {
            let mut client = clients[(index + attempt) % clients.len()].clone();
            let request = CreateDocumentRequest {
                metadata: Some(DocumentMetadata {
                    filename: filename.clone(),
                    idempotency_key: key.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                content: content.clone(),
            };
            match tokio::time::timeout(Duration::from_secs(20), client.create_document(request)).await {
                Ok(Ok(response)) => {
                    confirmed = response.into_inner().document.map(|d| d.id);
                    break;
                }
                Ok(Err(status)) => tracing::info!(index, code = ?status.code(), message = status.message(), "upload errored"),
                Err(_) => tracing::info!(index, "upload timed out"),
            }
            if key.is_none() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        seen.push(Upload {
            index,
            filename,
            key,
            confirmed,
        });
        tokio::time::sleep(pause).await;
    }
}

/// The figures of a run.
#[derive(Debug, Default)]
struct Accounting {
    uploads: usize,
    confirmed: usize,
    errored: usize,
    errored_but_stored: usize,
    lost: usize,
    duplicated: usize,
    stuck: usize,
    wrongly_failed: usize,
    bad_chunks: usize,
    not_found_by_search: usize,
    backward_events: usize,
    messages_left: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_upload_is_lost_duplicated_stuck_or_wrongly_failed_while_processes_and_servers_fail() {
    let settings = settings();
    let mut rng = Rng(settings.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut broker = RabbitNode::start("consumer_timeout = 4000").await;
    let mut redis = RedisNode::start().await;
    let fake = Fake::start(|_, body| {
        let slow = body["input"]
            .as_array()
            .is_some_and(|inputs| inputs.iter().any(|t| t.as_str().is_some_and(|t| t.contains(SLOW_WORD))));
        if slow {
            Reply::Late(Duration::from_secs(6), embeddings(body, 384))
        } else {
            Reply::Json(embeddings(body, 384))
        }
    })
    .await;

    let mut env = TestEnv::new().await;
    let direct_database = env.vars["DATABASE_URL"].clone();
    let postgres = TcpProxy::start("127.0.0.1:5432").await;
    for (name, value) in [
        ("DATABASE_URL", postgres.url_through(&direct_database)),
        ("AMQP_URL", broker.url()),
        ("REDIS_URL", redis.url()),
        ("FOLIO_EMBEDDER", "openai".into()),
        ("FOLIO_EMBED_URL", fake.url.clone()),
        ("FOLIO_EMBED_MODEL", "fake-model".into()),
        ("FOLIO_CONSUMER_TIMEOUT_SECS", "4".into()),
        ("FOLIO_LEASE_SECS", "10".into()),
        ("FOLIO_STARTUP_TIMEOUT_SECS", "300".into()),
        // The production defaults, not the suite's quicker ones.
        ("FOLIO_MAX_ATTEMPTS", "5".into()),
        ("FOLIO_ACCESS_TOKEN_TTL_SECS", "86400".into()),
        ("FOLIO_RATE_LIMIT_MEMBER", "1000000".into()),
        ("FOLIO_RATE_LIMIT_ADMIN", "1000000".into()),
        ("FOLIO_RATE_LIMIT_PEER", "1000000".into()),
        ("FOLIO_LOG_FORMAT", "json".into()),
    ] {
        env.set(name, value);
    }
    let logs = std::env::temp_dir().join(format!("folio-faults-{}", env.database));
    std::fs::create_dir_all(&logs).unwrap();
    eprintln!("fault suite: seed {}, logs in {}", settings.seed, logs.display());

    let mut apis = vec![Api::start(&env, &logs, 0).await, Api::start(&env, &logs, 1).await];
    let mut workers = Workers {
        slots: vec![None, None, None],
        logs: logs.clone(),
    };
    for slot in 0..3 {
        workers.spawn(&env, slot);
    }
    let member = {
        let mut auth = AuthServiceClient::new(Channel::from_shared(apis[0].url()).unwrap().connect_lazy());
        auth.register(folio_proto::v1::RegisterRequest {
            email: "chaos@folio.test".into(),
            password: "a member's passphrase".into(),
            display_name: "Chaos".into(),
        })
        .await
        .expect("register")
        .into_inner()
        .access_token
    };
    let pages: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        [
            "handbook-packaging.en.html",
            "handbook-packaging.ja.html",
            "handbook-packaging.ru.html",
            "handbook-packaging.ar.html",
        ]
        .iter()
        .filter_map(|name| {
            Some((
                name.to_string(),
                std::fs::read(folio_tests::relevance::documents_dir().join(name)).ok()?,
            ))
        })
        .collect(),
    );

    // Callers upload, paced so that the uploads span the fault cycle.
    const CYCLE: Duration = Duration::from_secs(45);
    let urls = Arc::new(apis.iter().map(Api::url).collect::<Vec<_>>());
    let next = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(settings.documents));
    let stop = Arc::new(AtomicBool::new(false));
    let pause = CYCLE * settings.callers as u32 / settings.documents.max(1) as u32;
    let callers: Vec<_> = (0..settings.callers)
        .map(|_| {
            tokio::spawn(caller(
                urls.clone(),
                member.clone(),
                next.clone(),
                total.clone(),
                stop.clone(),
                pause,
                pages.clone(),
            ))
        })
        .collect();

    // The schedule: one cycle of every fault (repeated while `run_for`
    // lasts), a random worker killed every 3 to 5 s throughout.
    let pool = folio_db::pool(&direct_database, 2).unwrap();
    let faults = Arc::new(Mutex::new(FaultLog::default()));
    let started = Instant::now();
    let mut cycle_start = Instant::now();
    let mut next_worker_kill = Duration::from_secs(3);
    let mut step = 0;
    loop {
        let at = cycle_start.elapsed();
        if at >= next_worker_kill {
            let slot = rng.below(3) as usize;
            workers.kill(slot).await;
            faults.lock().unwrap().note("worker SIGKILL");
            tokio::time::sleep(Duration::from_millis(500 + rng.below(1000))).await;
            workers.spawn(&env, slot);
            next_worker_kill = at + Duration::from_millis(3000 + rng.below(2000));
        }
        let due = [6, 12, 22, 30, 34, 38];
        if step < due.len() && at >= Duration::from_secs(due[step]) {
            match step {
                0 => {
                    let which = rng.below(2) as usize;
                    apis[which].kill().await;
                    faults.lock().unwrap().note("api-server SIGKILL");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    apis[which].spawn(&env);
                }
                1 => {
                    broker.restart().await;
                    faults.lock().unwrap().note("broker restart");
                }
                2 => {
                    postgres.cut();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    postgres.restore();
                    faults.lock().unwrap().note("postgres cut 5 s");
                }
                3 => {
                    redis.restart().await;
                    faults.lock().unwrap().note("redis restart");
                }
                4 => {
                    let mut conn = pool.get().await.unwrap();
                    for _ in 0..sql::send_again(&mut conn, 10).await {
                        faults.lock().unwrap().note("duplicate publish");
                    }
                }
                _ => {
                    broker.kill().await;
                    faults.lock().unwrap().note("broker SIGKILL");
                    broker.restart().await;
                }
            }
            step += 1;
        }
        let uploads_done = next.load(Ordering::SeqCst) >= total.load(Ordering::SeqCst);
        let cycle_done = step == 6 && at >= CYCLE;
        if cycle_done {
            match settings.run_for {
                Some(run_for) if started.elapsed() < run_for => {
                    total.fetch_add(settings.documents, Ordering::SeqCst);
                    cycle_start = Instant::now();
                    next_worker_kill = Duration::from_secs(3);
                    step = 0;
                }
                _ if uploads_done => break,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut uploads: Vec<Upload> = Vec::new();
    for caller in callers {
        uploads.extend(caller.await.unwrap());
    }
    uploads.sort_by_key(|u| u.index);
    if uploads.iter().any(|u| u.index == 3 && u.confirmed.is_some()) {
        faults.lock().unwrap().count("job slower than the consumer timeout");
    }

    // Everything is up again: the fleet drains.
    for api in &apis {
        api.wait_serving().await;
    }
    let terminal = folio_tests::eventually(Duration::from_secs(300), "every document terminal", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            (sql::not_terminal(&mut conn).await.ok()? == 0).then_some(Instant::now())
        }
    });
    let drained = tokio::time::timeout(Duration::from_secs(310), terminal).await;

    // The accounting.
    let mut conn = pool.get().await.unwrap();
    let documents = folio_db::models::document::list(
        &mut conn,
        &folio_db::models::document::DocumentFilter::default(),
        folio_db::models::document::Order::CreatedAsc,
        None,
        1_000_000,
    )
    .await
    .unwrap();
    let by_filename: HashMap<&str, Vec<&folio_db::models::document::Document>> = documents.iter().fold(HashMap::new(), |mut map, d| {
        map.entry(d.filename.as_str()).or_default().push(d);
        map
    });
    let mut figures = Accounting {
        uploads: uploads.len(),
        ..Default::default()
    };
    let mut search = SearchServiceClient::new(authed(&apis[0].url(), &member));
    let mut problems = Vec::new();
    for upload in &uploads {
        let stored = by_filename.get(upload.filename.as_str()).cloned().unwrap_or_default();
        figures.duplicated += stored.len().saturating_sub(1);
        match &upload.confirmed {
            Some(id) => {
                figures.confirmed += 1;
                let Some(document) = stored.iter().find(|d| d.id.to_string() == *id) else {
                    figures.lost += 1;
                    problems.push(format!("lost: upload {} ({id})", upload.index));
                    continue;
                };
                match document.state {
                    State::Ready => {}
                    State::Failed => {
                        figures.wrongly_failed += 1;
                        problems.push(format!(
                            "failed: upload {} {:?}: {:?}",
                            upload.index, document.error_code, document.error_message
                        ));
                        continue;
                    }
                    other => {
                        figures.stuck += 1;
                        problems.push(format!("stuck: upload {} {other}", upload.index));
                        continue;
                    }
                }
                let found = search
                    .search(SearchRequest {
                        query: marker(upload.index),
                        top_k: 5,
                        mode: SearchMode::Keyword as i32,
                        document_ids: vec![id.clone()],
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().results.iter().any(|hit| hit.document_id == *id))
                    .unwrap_or(false);
                if !found {
                    figures.not_found_by_search += 1;
                    problems.push(format!("not found by its word: upload {}", upload.index));
                }
            }
            None => {
                figures.errored += 1;
                if let Some(document) = stored.first() {
                    figures.errored_but_stored += 1;
                    if document.state != State::Ready {
                        figures.stuck += usize::from(!document.state.is_terminal());
                        problems.push(format!(
                            "errored upload {} (key {:?}) left {}",
                            upload.index, upload.key, document.state
                        ));
                    }
                }
            }
        }
    }

    let chunk_sets = sql::chunk_sets(&mut conn).await;
    let chunk_sets: HashMap<uuid::Uuid, sql::ChunkSet> = chunk_sets.into_iter().map(|c| (c.document_id, c)).collect();
    for document in documents.iter().filter(|d| d.state == State::Ready) {
        let ok = chunk_sets.get(&document.id).is_some_and(|c| {
            c.count == c.ordinals && c.lowest == 0 && c.highest as i64 == c.count - 1 && Some(c.count as i32) == document.chunk_count
        });
        if !ok {
            figures.bad_chunks += 1;
            problems.push(format!("chunks of {} are not one set 0..n-1", document.filename));
        }
    }

    let steps = sql::steps(&mut conn).await;
    let mut previous: HashMap<uuid::Uuid, (State, i32)> = HashMap::new();
    for sql::Step {
        document_id,
        state,
        attempt,
    } in steps
    {
        let state = State::parse(&state).expect("a state the lifecycle knows");
        if let Some((from, from_attempt)) = previous.insert(document_id, (state, attempt))
            && (!lifecycle::allowed(from, state) || attempt < from_attempt)
        {
            figures.backward_events += 1;
            problems.push(format!("{document_id}: {from} -> {state}"));
        }
    }
    drop(conn);

    // A retry scheduled before its document finished another way, or a
    // duplicate publish, is delivered when its delay is up and acked as seen:
    // the queues empty within the longest retry delay.
    let queues = env.topology().queues();
    let emptied = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let mut left = 0;
            for queue in &queues {
                let (ready, unacked) = broker.queue_counts(queue).await.unwrap_or((0, 0));
                left += ready + unacked;
            }
            if left == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    if emptied.is_err() {
        for queue in &queues {
            let (ready, unacked) = broker.queue_counts(queue).await.unwrap_or((0, 0));
            figures.messages_left += ready + unacked;
            if ready + unacked > 0 {
                problems.push(format!("{queue}: {ready} ready, {unacked} unacked"));
            }
        }
    }
    let last_ready = documents.iter().filter_map(|d| d.completed_at).max();
    let last_fault = faults.lock().unwrap().last;
    let counts = faults.lock().unwrap().counts.clone();
    println!("fault suite, seed {}: {figures:#?}", settings.seed);
    println!("faults injected: {counts:#?}");
    if let (Some(ready), Ok(_)) = (last_ready, &drained) {
        let fault_end = chrono::Utc::now() - chrono::Duration::from_std(last_fault.map_or(Duration::ZERO, |f| f.elapsed())).unwrap();
        println!(
            "last READY {:.1} s after the last fault; run took {:.0} s",
            (ready - fault_end).num_milliseconds() as f64 / 1000.0,
            started.elapsed().as_secs_f64()
        );
    }

    assert!(
        drained.is_ok(),
        "documents still waiting 300 s after the faults stopped: {problems:#?}"
    );
    assert_eq!(
        (figures.lost, figures.duplicated, figures.stuck, figures.wrongly_failed),
        (0, 0, 0, 0),
        "{problems:#?}"
    );
    assert_eq!(
        (figures.bad_chunks, figures.not_found_by_search, figures.backward_events),
        (0, 0, 0),
        "{problems:#?}"
    );
    assert_eq!(
        figures.messages_left, 0,
        "messages left in the queues a minute after the drain: {problems:#?}"
    );
    assert!(figures.confirmed > 0 && figures.confirmed + figures.errored == figures.uploads);
    for kind in [
        "worker SIGKILL",
        "api-server SIGKILL",
        "broker restart",
        "broker SIGKILL",
        "postgres cut 5 s",
        "redis restart",
        "duplicate publish",
        "job slower than the consumer timeout",
    ] {
        assert!(counts.contains_key(kind), "the schedule never injected {kind}: {counts:?}");
    }

    for slot in 0..3 {
        workers.kill(slot).await;
    }
    for api in &mut apis {
        api.kill().await;
    }
    let _ = std::fs::remove_dir_all(&logs);
    env.cleanup().await;
}

/// The queries of the schedule and the accounting.
mod sql {
    use diesel::sql_types::{BigInt, Integer, Text, Uuid};
    use diesel_async::{AsyncPgConnection, RunQueryDsl};

    /// Marks up to `n` sent outbox rows unsent, as a relay that crashed
    /// between the broker's confirm and its mark would leave them: the relay
    /// publishes them again. Returns how many.
    pub async fn send_again(conn: &mut AsyncPgConnection, n: i64) -> usize {
        diesel::sql_query(
            "UPDATE outbox SET sent_at = NULL WHERE id IN \
             (SELECT id FROM outbox WHERE sent_at IS NOT NULL ORDER BY random() LIMIT $1)",
        )
        .bind::<BigInt, _>(n)
        .execute(conn)
        .await
        .expect("mark outbox rows unsent")
    }

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Documents not yet READY, FAILED or CANCELLED.
    pub async fn not_terminal(conn: &mut AsyncPgConnection) -> diesel::QueryResult<i64> {
        let count: Count = diesel::sql_query("SELECT count(*) AS n FROM documents WHERE state IN ('QUEUED', 'PROCESSING', 'RETRY_WAIT')")
            .get_result(conn)
            .await?;
        Ok(count.n)
    }

    /// A document's chunks, summed up.
    #[derive(diesel::QueryableByName)]
    pub struct ChunkSet {
        #[diesel(sql_type = Uuid)]
        pub document_id: uuid::Uuid,
        #[diesel(sql_type = BigInt)]
        pub count: i64,
        #[diesel(sql_type = BigInt)]
        pub ordinals: i64,
        #[diesel(sql_type = Integer)]
        pub lowest: i32,
        #[diesel(sql_type = Integer)]
        pub highest: i32,
    }

    pub async fn chunk_sets(conn: &mut AsyncPgConnection) -> Vec<ChunkSet> {
        diesel::sql_query(
            "SELECT document_id, count(*) AS count, count(DISTINCT ordinal) AS ordinals, \
             min(ordinal) AS lowest, max(ordinal) AS highest FROM chunks GROUP BY document_id",
        )
        .load(conn)
        .await
        .expect("chunk sets")
    }

    /// One event's document, state and attempt.
    #[derive(diesel::QueryableByName)]
    pub struct Step {
        #[diesel(sql_type = Uuid)]
        pub document_id: uuid::Uuid,
        #[diesel(sql_type = Text)]
        pub state: String,
        #[diesel(sql_type = Integer)]
        pub attempt: i32,
    }

    /// Every event, each document's in order.
    pub async fn steps(conn: &mut AsyncPgConnection) -> Vec<Step> {
        diesel::sql_query("SELECT document_id, state, attempt FROM document_events ORDER BY document_id, id")
            .load(conn)
            .await
            .expect("events")
    }
}

//! Live status benchmark, printed as Markdown (BENCHMARKS.md keeps the
//! figures). Run with `scripts/bench watch` (release builds, real servers).
//!
//! A folio-api process and one folio-worker process; 1, 100 and then 1,000
//! WatchDocuments streams (the admin's, so each sees every event) over
//! connections of 100 streams each. For each count: the api-server's resident
//! memory before and after the streams open (idle), then 50 small documents
//! uploaded 200 ms apart; every watcher notes, for every event, its arrival
//! time minus the event's `created_at` (written by `clock_timestamp()` as the
//! last statement before the worker's commit, on the same machine clock).

use std::{process::Stdio, time::Duration};

use folio_proto::v1::{
    CreateDocumentRequest, DocumentMetadata, WatchDocumentsRequest, document_service_client::DocumentServiceClient, watch_response::Item,
};
use folio_tests::{
    Bearer, TestEnv,
    bench::{ms, percentile, status_kib},
};
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

const DOCUMENTS: usize = 50;
const STREAMS_PER_CONNECTION: usize = 100;

struct Row {
    watchers: usize,
    events: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    idle_bytes_per_watcher: Option<f64>,
}

async fn run(env: &TestEnv, url: &str, api_pid: u32, token: &str, watchers: usize) -> Row {
    let connections = watchers.div_ceil(STREAMS_PER_CONNECTION);
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(Channel::from_shared(url.to_owned()).unwrap().connect().await.unwrap());
    }
    let before = status_kib(api_pid, "VmRSS");
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let (opened, mut opened_rx) = tokio::sync::mpsc::channel::<()>(watchers);
    for n in 0..watchers {
        let mut client = DocumentServiceClient::new(InterceptedService::new(channels[n % connections].clone(), Bearer::new(token)));
        let opened = opened.clone();
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = client
                .watch_documents(WatchDocumentsRequest::default())
                .await
                .expect("watch")
                .into_inner();
            let mut latencies = Vec::new();
            // One wait for the stop for the whole run, not one per message.
            let stop = stopped.changed();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return latencies,
                    message = stream.next() => match message.expect("stream open").expect("no error").item {
                        Some(Item::Heartbeat(_)) => { let _ = opened.send(()).await; }
                        Some(Item::Event(event)) => {
                            let created = event.created_at.expect("created_at");
                            let created = std::time::UNIX_EPOCH + Duration::new(created.seconds as u64, created.nanos as u32);
                            latencies.push(std::time::SystemTime::now().duration_since(created).unwrap_or_default());
                        }
                        None => panic!("an empty message"),
                    }
                }
            }
        }));
    }
    for _ in 0..watchers {
        opened_rx.recv().await.expect("opened");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = status_kib(api_pid, "VmRSS");
    let idle_bytes_per_watcher = (watchers >= 100).then(|| (after.saturating_sub(before) * 1024) as f64 / watchers as f64);

    let mut uploader = DocumentServiceClient::new(InterceptedService::new(channels[0].clone(), Bearer::new(token)));
    let pool = env.pool();
    let first_document = {
        let mut conn = pool.get().await.unwrap();
        folio_db::models::document_event::settled(&mut conn).await.unwrap()
    };
    for i in 0..DOCUMENTS {
        uploader
            .create_document(CreateDocumentRequest {
                metadata: Some(DocumentMetadata {
                    filename: format!("w{watchers}-{i}.md"),
                    ..Default::default()
                }),
                content: format!("# Note {watchers}-{i}\n\nA short note about tides, number {i}.\n\n## More\n\nAnd a second part.\n")
                    .into_bytes(),
            })
            .await
            .expect("upload");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Wait until every document is READY, then a little for the last events.
    loop {
        let mut conn = pool.get().await.unwrap();
        use diesel::{ExpressionMethods as _, QueryDsl as _};
        use diesel_async::RunQueryDsl as _;
        use folio_db::schema::documents;
        let pending: i64 = documents::table
            .filter(documents::state.ne(folio_db::documents::state::State::Ready))
            .count()
            .get_result(&mut conn)
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let expected = {
        let mut conn = pool.get().await.unwrap();
        folio_db::models::document_event::list_watched(
            &mut conn,
            folio_db::models::document_event::Scope::Everyone,
            first_document,
            i64::MAX,
            100_000,
        )
        .await
        .unwrap()
        .len()
    };
    let _ = stop.send(true);
    let mut all = Vec::new();
    for task in tasks {
        let latencies = task.await.unwrap();
        assert_eq!(latencies.len(), expected, "a watcher missed events");
        all.extend(latencies);
    }
    all.sort();
    Row {
        watchers,
        events: expected,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        max: *all.last().unwrap(),
        idle_bytes_per_watcher,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut env = folio_tests::bench::bench_env().await;
    env.set("FOLIO_WATCH_MAX_PER_USER", "5000");
    let folio_tests::ApiProcess {
        child: mut api,
        url,
        admin_token: token,
        ..
    } = folio_tests::spawn_api_process(&env).await;
    let mut worker = env.command("folio-worker").stdout(Stdio::null()).spawn().expect("folio-worker");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let api_pid = api.id().unwrap();
    let mut rows = Vec::new();
    for watchers in [1, 100, 1000] {
        rows.push(run(&env, &url, api_pid, &token, watchers).await);
    }
    println!("| watchers | events each | commit → client p50 | p99 | max | api-server memory per idle watcher |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.watchers,
            row.events,
            ms(row.p50),
            ms(row.p99),
            ms(row.max),
            row.idle_bytes_per_watcher.map_or("-".into(), |b| format!("{:.1} KB", b / 1024.0))
        );
    }

    for process in [&api, &worker] {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &process.id().unwrap().to_string()])
            .status();
    }
    let _ = worker.wait().await;
    let _ = api.wait().await;
    env.cleanup().await;
}

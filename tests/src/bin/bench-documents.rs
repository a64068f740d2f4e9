//! Ingestion benchmark, printed as Markdown (BENCHMARKS.md keeps the figures).
//! Run with `scripts/bench documents` (release builds, real servers):
//! 1,000 mixed documents (~20 KB of text, Markdown and HTML) uploaded by 32
//! concurrent callers to a folio-api process, processed by one and then two
//! folio-worker processes with the `hash` embedder; then the same uploads with
//! no worker running.

use std::{process::Stdio, time::Duration};

use diesel_async::RunQueryDsl as _;
use folio_db::models::segment;
use folio_proto::v1::{CreateDocumentRequest, DocumentMetadata, document_service_client::DocumentServiceClient};
use folio_tests::{
    Bearer,
    bench::{bench_env, gather_latencies, ms, percentile, status_kib, stop},
};
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;

const DOCUMENTS: usize = 1000;
const CALLERS: usize = 32;

/// Document `i`: ~20 KB, text, Markdown or HTML, each unique.
fn document(i: usize) -> (String, Vec<u8>) {
    const WORDS: [&str; 24] = [
        "archive", "ledger", "river", "signal", "harbor", "lantern", "meadow", "orbit", "pattern", "quartz", "relay", "summit", "thicket",
        "umbra", "vessel", "willow", "yarrow", "zephyr", "beacon", "cinder", "delta", "ember", "falcon", "granite",
    ];
    let mut paragraphs = Vec::new();
    let mut n = i * 7919;
    while paragraphs.iter().map(|p: &String| p.len()).sum::<usize>() < 20_000 {
        let words: Vec<&str> = (0..60)
            .map(|_| {
                n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                WORDS[(n >> 33) % WORDS.len()]
            })
            .collect();
        paragraphs.push(format!("{} {i}.", words.join(" ")));
    }
    match i % 3 {
        0 => (format!("doc-{i}.txt"), paragraphs.join("\n\n").into_bytes()),
        1 => {
            let body: Vec<String> = paragraphs
                .iter()
                .enumerate()
                .map(|(k, p)| if k % 5 == 0 { format!("## Part {k}\n\n{p}") } else { p.clone() })
                .collect();
            (
                format!("doc-{i}.md"),
                format!("# Document {i}\n\n{}", body.join("\n\n")).into_bytes(),
            )
        }
        _ => {
            let body: String = paragraphs
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    if k % 5 == 0 {
                        format!("<h2>Part {k}</h2><p>{p}</p>")
                    } else {
                        format!("<p>{p}</p>")
                    }
                })
                .collect();
            (
                format!("doc-{i}.html"),
                format!("<!DOCTYPE html><html><head><title>Document {i}</title></head><body><h1>Document {i}</h1>{body}</body></html>")
                    .into_bytes(),
            )
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Totals {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ready: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    chunks: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    p50_s: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    p99_s: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    span_s: f64,
}

#[derive(diesel::QueryableByName)]
struct StageShare {
    #[diesel(sql_type = diesel::sql_types::Text)]
    stage: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    total_ms: f64,
}

/// Uploads `documents` with `CreateDocument` from `CALLERS` concurrent
/// callers, each one after another; returns every call's latency, sorted.
async fn upload_all(channel: &tonic::transport::Channel, token: &str, documents: Vec<(String, Vec<u8>)>) -> Vec<Duration> {
    let per_caller = documents.len().div_ceil(CALLERS);
    let uploads = documents.chunks(per_caller).map(|batch| {
        let mut client = DocumentServiceClient::new(InterceptedService::new(channel.clone(), Bearer::new(token)));
        let batch = batch.to_vec();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            for (filename, content) in batch {
                let t = Instant::now();
                client
                    .create_document(CreateDocumentRequest {
                        metadata: Some(DocumentMetadata {
                            filename,
                            ..Default::default()
                        }),
                        content,
                    })
                    .await
                    .expect("upload");
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    gather_latencies(uploads).await
}

/// The table rows of an upload run: its rate and its latency percentiles.
fn print_upload_rows(latencies: &[Duration], took: Duration) {
    println!(
        "| uploads: all {DOCUMENTS} done in | {:.1} s ({:.0}/s) |",
        took.as_secs_f64(),
        DOCUMENTS as f64 / took.as_secs_f64()
    );
    println!(
        "| upload p50 / p99, {CALLERS} callers | {} / {} |",
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.99))
    );
}

/// One run: `workers` folio-worker processes (none: the upload path on its
/// own, as when the worker fleet runs on other machines, so the callers share
/// the cores with folio-api, Postgres, RabbitMQ and Redis only).
async fn run(workers: usize) {
    let mut env = bench_env().await;
    let folio_tests::ApiProcess {
        child: mut api,
        channel,
        admin_token: token,
        ..
    } = folio_tests::spawn_api_process(&env).await;
    let mut processes: Vec<_> = (0..workers)
        .map(|_| {
            env.command("folio-worker")
                .env("FOLIO_WORKER_CONCURRENCY", "4")
                .stdout(Stdio::null())
                .spawn()
                .expect("folio-worker")
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let documents: Vec<(String, Vec<u8>)> = (0..DOCUMENTS).map(document).collect();
    let bytes: usize = documents.iter().map(|(_, d)| d.len()).sum();
    let started = Instant::now();
    let latencies = upload_all(&channel, &token, documents).await;
    let upload_time = started.elapsed();
    if workers == 0 {
        println!("\n### uploads alone (no worker running)\n");
        println!("| measure | figure |");
        println!("|---|---|");
        print_upload_rows(&latencies, upload_time);
        stop(&mut api).await;
        env.cleanup().await;
        return;
    }

    let pool = env.pool();
    let totals = loop {
        let mut conn = pool.get().await.unwrap();
        let totals: Totals = diesel::sql_query(
            "SELECT count(*) FILTER (WHERE state = 'READY')::int8 AS ready, coalesce(sum(chunk_count), 0)::int8 AS chunks, \
             coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)), 0)::float8 AS p50_s, \
             coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)), 0)::float8 AS p99_s, \
             coalesce(extract(epoch FROM max(completed_at) - min(created_at)), 0)::float8 AS span_s FROM documents",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        if totals.ready as usize == DOCUMENTS || started.elapsed() > Duration::from_secs(900) {
            break totals;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ready_at = started.elapsed();
    // READY documents are searchable at once (the open segment is scanned
    // exactly); the segment builder seals them into indexed segments after.
    let mut conn = pool.get().await.unwrap();
    let pending_at_ready = segment::open_count(&mut conn).await.unwrap();
    while segment::open_count(&mut conn).await.unwrap() > 0 && started.elapsed() < Duration::from_secs(1800) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let graph_at = started.elapsed();
    let shares: Vec<StageShare> = diesel::sql_query(
        "SELECT s.key AS stage, sum(s.value::float8) AS total_ms FROM documents d, jsonb_each_text(d.stage_ms) s GROUP BY s.key ORDER BY s.key",
    )
    .load(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let stage_total: f64 = shares.iter().map(|s| s.total_ms).sum();
    let peaks: Vec<u64> = processes.iter().map(|p| status_kib(p.id().unwrap(), "VmHWM") / 1024).collect();

    let span = totals.span_s.max(0.001);
    println!("\n### {workers} worker(s)\n");
    println!("| measure | figure |");
    println!("|---|---|");
    println!(
        "| documents READY | {} of {DOCUMENTS} ({:.1} MB) |",
        totals.ready,
        bytes as f64 / 1e6
    );
    println!("| end to end, first upload to last READY | {span:.1} s |");
    println!("| documents/s | {:.1} |", totals.ready as f64 / span);
    println!("| MB/s | {:.2} |", bytes as f64 / 1e6 / span);
    println!("| chunks/s | {:.0} ({} chunks) |", totals.chunks as f64 / span, totals.chunks);
    println!("| upload to READY p50 / p99 | {:.2} s / {:.2} s |", totals.p50_s, totals.p99_s);
    println!(
        "| chunks not yet in the HNSW graph at the last READY; graph complete | {pending_at_ready}; {:.1} s after the first upload ({:.1} s after the last READY seen) |",
        graph_at.as_secs_f64(),
        (graph_at - ready_at).as_secs_f64()
    );
    print_upload_rows(&latencies, upload_time);
    let shares: Vec<String> = shares
        .iter()
        .map(|s| format!("{} {:.0}%", s.stage, 100.0 * s.total_ms / stage_total.max(1.0)))
        .collect();
    println!("| share of worker time per stage | {} |", shares.join(", "));
    println!(
        "| peak worker memory (VmHWM) | {} MiB |",
        peaks.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" / ")
    );

    for process in processes.iter_mut().chain(std::iter::once(&mut api)) {
        stop(process).await;
    }
    env.cleanup().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // FOLIO_BENCH_PHASE=uploads runs the last phase alone (for profiling).
    if std::env::var("FOLIO_BENCH_PHASE").as_deref() != Ok("uploads") {
        run(1).await;
        run(2).await;
    }
    run(0).await;
}

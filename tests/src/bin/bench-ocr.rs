//! OCR's speed, memory and accuracy, printed as Markdown tables (BENCHMARKS.md
//! keeps the figures). Run with `scripts/bench ocr` (release build; needs the
//! test documents, Tesseract, poppler, ImageMagick and img2pdf; no servers).
//!
//! Scans of real manual pages (`folio_tests::scans`, as the OCR tests make
//! them: 300 dpi, clean and worn) go through the worker's own `Ocr`, page by
//! page as the pipeline reads them, with one pass and with two. Printed: pages
//! a second on one core (`OMP_THREAD_LIMIT=1`, one page at a time, as a worker
//! job reads them), the largest resident memory of any OCR child process
//! (getrusage of the children) and of this process, and the word accuracy
//! against `pdftotext` of the original pages, per page and over the set.

use std::{path::PathBuf, time::Instant};

use folio_core::config::OcrConfig;
use folio_tests::{
    relevance::documents_dir,
    scans::{Condition, Scanner, pdf_text, word_errors},
};
use folio_worker::ocr::{Ocr, Source};
use nix::sys::resource::{UsageWho, getrusage};

/// Prose pages of three manuals by different typesetters.
const PAGES: [(&str, u32); 6] = [
    ("bash.pdf", 5),
    ("bash.pdf", 12),
    ("reportlab-userguide.pdf", 7),
    ("reportlab-userguide.pdf", 20),
    ("debian-reference.en.pdf", 30),
    ("debian-reference.en.pdf", 45),
];

fn max_rss_mib(who: UsageWho) -> f64 {
    // Linux reports ru_maxrss in KiB.
    getrusage(who).map_or(0.0, |usage| usage.max_rss() as f64 / 1024.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let scanner = Scanner::default();
    let dir = documents_dir();
    // Every scan first: ImageMagick and img2pdf are children too, and the
    // memory of OCR's children is told apart by how far it rises after.
    let scans: Vec<(Condition, Vec<u8>)> = [Condition::Clean, Condition::Degraded]
        .into_iter()
        .map(|condition| {
            let pictures: Vec<PathBuf> = PAGES
                .iter()
                .map(|(pdf, page)| scanner.page(&dir.join(pdf), *page, 300, condition))
                .collect();
            (condition, scanner.pdf(&pictures))
        })
        .collect();
    let before = max_rss_mib(UsageWho::RUSAGE_CHILDREN);
    println!("| scans | passes | pages | seconds | pages/s | accuracy (over the set) | per page |");
    println!("|---|---|---|---|---|---|---|");
    for (condition, scan) in &scans {
        for passes in [1, 2] {
            let ocr = Ocr::new(OcrConfig {
                languages: "eng".into(),
                dpi: 300,
                max_pixels: 50_000_000,
                max_pages: 500,
                page_timeout: std::time::Duration::from_secs(120),
                memory_bytes: 1024 << 20,
                passes,
            });
            let started = Instant::now();
            let source = Source::Pdf {
                pages: (1..=PAGES.len() as u32).collect(),
                page_count: PAGES.len() as u32,
            };
            let mut reading = ocr.prepare(source, scan).await.expect("prepare");
            let mut per_page = Vec::new();
            let (mut errors, mut words) = (0, 0);
            for (index, (pdf, page)) in PAGES.iter().enumerate() {
                let read = reading.read(index).await.expect("read");
                let (page_errors, page_words) = word_errors(&pdf_text(&dir.join(pdf), *page, *page), &read.paragraphs.join("\n"));
                per_page.push(format!("{:.3}", 1.0 - page_errors as f64 / page_words as f64));
                (errors, words) = (errors + page_errors, words + page_words);
            }
            reading.searchable_pdf().await.expect("searchable PDF");
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "| {condition:?} | {passes} | {} | {seconds:.1} | {:.2} | {:.3} | {} |",
                PAGES.len(),
                PAGES.len() as f64 / seconds,
                1.0 - errors as f64 / words as f64,
                per_page.join(" ")
            );
        }
    }
    println!();
    let after = max_rss_mib(UsageWho::RUSAGE_CHILDREN);
    let children = if after > before {
        format!("{after:.0} MiB")
    } else {
        format!("at most {before:.0} MiB (no more than the tools that made the scans)")
    };
    println!(
        "largest resident memory: an OCR child {children}; this process {:.0} MiB",
        max_rss_mib(UsageWho::RUSAGE_SELF)
    );
}

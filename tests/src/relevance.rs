//! The real documents the suite and the benchmarks read, and the relevance
//! development set: known-item queries (section headings, and sentences from
//! inside sections with 30% of their words dropped) over three manuals, whose
//! success the search test asserts and `scripts/bench models` reports for each
//! embedder and mode.

use std::{collections::HashMap, path::PathBuf};

use folio_proto::v1::{SearchRequest, document_service_client::DocumentServiceClient, search_service_client::SearchServiceClient};

use crate::clients::Authed;

/// Where `scripts/install-test-documents` put the real documents:
/// `FOLIO_TEST_DOCUMENTS`, else target/test-documents.
pub fn documents_dir() -> PathBuf {
    std::env::var("FOLIO_TEST_DOCUMENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-documents")))
}

/// Where `scripts/install-test-documents` put the development set's corpus:
/// three manuals, one HTML file per page or chapter.
pub fn corpus_dir() -> PathBuf {
    documents_dir().join("relevance")
}

/// What a known-item query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A section's heading, its number left out.
    Heading,
    /// A sentence from inside a section, 30% of its words dropped.
    Sentence,
}

/// Which half of the set a query belongs to: choices (weights, settings) are
/// made on the tuning half and reported on the checking half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Tuning,
    Checking,
}

/// One query and the section it should find: a hit is a result from that
/// file whose section path is the target's.
#[derive(Debug, Clone)]
pub struct KnownItem {
    pub kind: Kind,
    pub half: Half,
    pub query: String,
    pub file: String,
    pub section_path: Vec<String>,
}

/// The development set: its documents and its known-item queries, made
/// deterministically (a fixed seed) from what the parser reads of the corpus.
pub struct DevSet {
    pub documents: Vec<(String, Vec<u8>)>,
    pub items: Vec<KnownItem>,
}

/// The share of a sentence's words a sentence query drops.
const DROPPED: f64 = 0.3;
/// Sentences shorter or longer than this (in words) make no query.
const SENTENCE_WORDS: std::ops::RangeInclusive<usize> = 8..=40;
/// Nor do sentences longer than this in characters (a log line, a URL).
const SENTENCE_CHARS: usize = 300;

impl DevSet {
    /// Reads and parses every file of [`corpus_dir`] (sorted by name). A
    /// heading, its number left out, makes a query when no other section in
    /// the corpus has the same one (case aside); each section gives one
    /// sentence (a seeded choice among those of 8 to 40 words and at most 300
    /// characters that appear nowhere else), 30% of its words dropped at
    /// seeded places. Queries of each kind alternate between the halves in
    /// corpus order.
    pub fn load() -> DevSet {
        use folio_parse::{detect, parse};
        let dir = corpus_dir();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/install-test-documents)", dir.display()))
            .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut documents = Vec::new();
        // (file, section path, the section's text), in reading order.
        let mut sections: Vec<(String, Vec<String>, String)> = Vec::new();
        for name in names {
            let bytes = std::fs::read(dir.join(&name)).expect("a corpus file");
            let format = detect::detect(&bytes, &name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            let parsed = parse::parse(format, &bytes, &parse::Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            for block in parsed.blocks.iter().filter(|b| !b.section_path.is_empty()) {
                match sections
                    .iter_mut()
                    .rev()
                    .find(|(file, path, _)| *file == name && *path == block.section_path)
                {
                    Some((_, _, text)) => {
                        text.push(' ');
                        text.push_str(&block.text);
                    }
                    None => sections.push((name.clone(), block.section_path.clone(), block.text.clone())),
                }
            }
            documents.push((name, bytes));
        }

        let mut headings: HashMap<String, usize> = HashMap::new();
        let mut sentences: HashMap<String, usize> = HashMap::new();
        for (_, path, text) in &sections {
            *headings.entry(unnumbered(path.last().expect("a path")).to_lowercase()).or_default() += 1;
            for sentence in split_sentences(text) {
                *sentences.entry(sentence.to_lowercase()).or_default() += 1;
            }
        }
        let mut random = SplitMix(0x5eed_f011_0000_0023);
        let mut items = Vec::new();
        let mut count = [0usize; 2];
        let mut half = |kind: Kind| {
            let n = &mut count[kind as usize];
            *n += 1;
            if *n % 2 == 1 { Half::Tuning } else { Half::Checking }
        };
        for (file, path, text) in &sections {
            let heading = unnumbered(path.last().expect("a path"));
            if headings[&heading.to_lowercase()] == 1 && heading.chars().any(char::is_alphabetic) {
                items.push(KnownItem {
                    kind: Kind::Heading,
                    half: half(Kind::Heading),
                    query: heading.to_owned(),
                    file: file.clone(),
                    section_path: path.clone(),
                });
            }
            let usable: Vec<&str> = split_sentences(text)
                .filter(|s| {
                    SENTENCE_WORDS.contains(&s.split_whitespace().count()) && s.len() <= SENTENCE_CHARS && sentences[&s.to_lowercase()] == 1
                })
                .collect();
            if usable.is_empty() {
                continue;
            }
            let sentence = usable[random.below(usable.len())];
            let mut words: Vec<Option<&str>> = sentence.split_whitespace().map(Some).collect();
            let drop = (words.len() as f64 * DROPPED).round() as usize;
            let mut places: Vec<usize> = (0..words.len()).collect();
            for i in 0..drop {
                let j = i + random.below(places.len() - i);
                places.swap(i, j);
                words[places[i]] = None;
            }
            items.push(KnownItem {
                kind: Kind::Sentence,
                half: half(Kind::Sentence),
                query: words.into_iter().flatten().collect::<Vec<_>>().join(" "),
                file: file.clone(),
                section_path: path.clone(),
            });
        }
        DevSet { documents, items }
    }

    /// The queries of one kind in one half.
    pub fn of(&self, kind: Kind, half: Half) -> Vec<&KnownItem> {
        self.items.iter().filter(|i| i.kind == kind && i.half == half).collect()
    }

    /// Uploads every document as the caller and waits until all are READY;
    /// returns their ids by file name.
    pub async fn index(&self, channel: Authed, timeout: std::time::Duration) -> HashMap<String, String> {
        use futures_util::{StreamExt as _, stream};
        let client = DocumentServiceClient::new(channel);
        let ids: HashMap<String, String> = stream::iter(&self.documents)
            .map(|(name, bytes)| {
                let mut client = client.clone();
                async move { (name.clone(), crate::upload_document(&mut client, name, bytes).await.id) }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        for id in ids.values() {
            crate::wait_for_state(&client, id, folio_proto::v1::DocumentState::Ready, timeout).await;
        }
        ids
    }
}

/// A heading without its number ("3.1.3. Integration" and "Chapter 3.
/// Analyzing" lose their first words), as someone looking for the section
/// would type it.
fn unnumbered(heading: &str) -> &str {
    let heading = heading.trim();
    let rest = ["Chapter ", "Appendix "]
        .iter()
        .find_map(|prefix| heading.strip_prefix(prefix))
        .unwrap_or(heading);
    let first = rest.split_whitespace().next().unwrap_or("");
    // "7.1", "3.1.3.", "A.2.", or the "C" of "Appendix C".
    let body = first.strip_prefix(|c: char| c.is_ascii_uppercase()).unwrap_or(first);
    let numbered =
        !first.is_empty() && body.chars().all(|c| c.is_ascii_digit() || c == '.') && (!body.is_empty() || rest.len() < heading.len());
    if numbered { rest[first.len()..].trim_start() } else { rest }
}

/// Lifts the per-account and per-address call limits of `env`'s servers: a
/// measure searches faster than a person would.
pub fn unlimited(env: &mut crate::TestEnv) {
    for limit in ["FOLIO_RATE_LIMIT_MEMBER", "FOLIO_RATE_LIMIT_PEER"] {
        env.set(limit, "1000000");
    }
}

/// Sentences: text up to a `.`, `?` or `!` that whitespace follows.
fn split_sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let rest_trimmed = rest.trim_start();
        if rest_trimmed.is_empty() {
            return None;
        }
        let bytes = rest_trimmed.as_bytes();
        let end = (0..bytes.len())
            .find(|&i| matches!(bytes[i], b'.' | b'?' | b'!') && bytes.get(i + 1).is_none_or(u8::is_ascii_whitespace))
            .map_or(bytes.len(), |i| i + 1);
        let (sentence, after) = rest_trimmed.split_at(end);
        rest = after;
        Some(sentence.trim())
    })
}

/// A small seeded generator (SplitMix64), so the set is the same on every
/// machine without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Known-item success over a set of queries: the share with a hit at rank 1,
/// in the top 3, and the mean reciprocal rank of the first hit in the top 10.
#[derive(Debug, Default, Clone, Copy)]
pub struct Success {
    pub queries: usize,
    pub at1: usize,
    pub at3: usize,
    pub reciprocal: f64,
}

impl Success {
    pub fn at1(&self) -> f64 {
        self.at1 as f64 / self.queries.max(1) as f64
    }

    pub fn at3(&self) -> f64 {
        self.at3 as f64 / self.queries.max(1) as f64
    }

    pub fn mrr(&self) -> f64 {
        self.reciprocal / self.queries.max(1) as f64
    }
}

/// Searches for each item (top 10, `mode`, the reranker unless `no_rerank`;
/// four at a time) and scores where its section comes.
pub async fn success(channel: Authed, items: &[&KnownItem], mode: folio_proto::v1::SearchMode, no_rerank: bool) -> Success {
    let ranks = ranks(channel, items, mode, no_rerank).await;
    ranks.into_iter().fold(
        Success {
            queries: items.len(),
            ..Default::default()
        },
        |mut s, rank| {
            if let Some(rank) = rank {
                s.at1 += usize::from(rank == 0);
                s.at3 += usize::from(rank < 3);
                s.reciprocal += 1.0 / (rank + 1) as f64;
            }
            s
        },
    )
}

/// Where each item's section comes in its search (0-based; None: not in the
/// top 10), in the items' order.
pub async fn ranks(channel: Authed, items: &[&KnownItem], mode: folio_proto::v1::SearchMode, no_rerank: bool) -> Vec<Option<usize>> {
    use futures_util::{StreamExt as _, stream};
    let searches = SearchServiceClient::new(channel);
    stream::iter(items)
        .map(|item| {
            let mut searches = searches.clone();
            async move {
                let response = searches
                    .search(SearchRequest {
                        query: item.query.clone(),
                        top_k: 10,
                        mode: mode as i32,
                        no_rerank,
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|status| panic!("search {:?}: {status}", item.query))
                    .into_inner();
                response
                    .results
                    .iter()
                    .position(|r| r.filename == item.file && r.section_path == item.section_path)
            }
        })
        .buffered(4)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_queries_leave_section_numbers_out() {
        for (heading, query) in [
            ("3.1.3. Integration with Other Machines", "Integration with Other Machines"),
            ("7.1 Job Control Basics", "Job Control Basics"),
            ("Chapter 3. Analyzing the Existing Setup", "Analyzing the Existing Setup"),
            ("Appendix C GNU Free Documentation License", "GNU Free Documentation License"),
            ("A.2. Knoppix", "Knoppix"),
            ("I Want More", "I Want More"),
            ("3D Printing", "3D Printing"),
            ("Pipelines", "Pipelines"),
        ] {
            assert_eq!(unnumbered(heading), query);
        }
    }

    #[test]
    fn sentences_end_at_a_stop_that_whitespace_follows() {
        let found: Vec<&str> = split_sentences("Run make. Then v1.2 works! Does it? yes").collect();
        assert_eq!(found, ["Run make.", "Then v1.2 works!", "Does it?", "yes"]);
    }
}

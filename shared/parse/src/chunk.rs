//! Chunking: structure-aware and token-bounded with overlap. Blocks are packed
//! into chunks that never cross a section boundary; a chunk holds at most
//! `max_tokens` tokens, and the next chunk of the same section repeats the last
//! `overlap_tokens` of it so no sentence loses its context at a cut. A block
//! longer than a chunk is split at word boundaries.
//!
//! Tokens are counted by a [`Measure`]: whitespace-separated words by
//! default ([`Words`]), or an embedding model's own tokens. A model that reads
//! a bounded window of tokens gets chunks that fit in it together with their
//! headings (what it is given is [`with_headings`]), so no part of a chunk is
//! invisible to vector search: a section longer than that is split into more
//! chunks, never cut.

use super::parse::Block;

/// Chunking settings.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSettings {
    pub max_tokens: usize,
    pub overlap_tokens: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        ChunkSettings {
            max_tokens: 256,
            overlap_tokens: 32,
        }
    }
}

/// One chunk to embed and index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    pub section_path: Vec<String>,
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    pub token_count: usize,
}

/// What embedders and rerankers see of a chunk: its headings, then its text.
/// The headings say what the text is about even when it never names it.
pub fn with_headings<S: AsRef<str>>(section_path: &[S], text: &str) -> String {
    if section_path.is_empty() {
        return text.to_owned();
    }
    let headings: Vec<&str> = section_path.iter().map(AsRef::as_ref).collect();
    format!("{}\n\n{text}", headings.join(" > "))
}

/// How chunk lengths are counted.
pub trait Measure {
    /// The tokens of `text`.
    fn count(&self, text: &str) -> usize;
    /// The most tokens of one input the model reads (None: no limit): a
    /// chunk's text with its headings stays within it.
    fn window(&self) -> Option<usize>;
}

/// Whitespace-separated words, with no window: the measure for embedders
/// that read all of a text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Words;

impl Measure for Words {
    fn count(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }

    fn window(&self) -> Option<usize> {
        None
    }
}

/// The fewest tokens a chunk may hold whatever its headings take, so deep
/// headings never shrink chunks to nothing.
const MIN_ROOM: usize = 32;

struct Word<'a> {
    text: &'a str,
    page: Option<u32>,
    tokens: usize,
}

/// Chunks `blocks` (in reading order), counting words.
pub fn chunk(blocks: &[Block], settings: ChunkSettings) -> Vec<Chunk> {
    chunk_with(blocks, settings, &Words)
}

/// Chunks `blocks` (in reading order), counting tokens with `measure`.
/// Words are costed one by one (a model's tokenizer splits at whitespace, so
/// a text's tokens are about the sum of its words'); where the measure has a
/// window, each chunk is then counted whole with its headings and given back
/// words from its end until it fits. Headings that leave less than 32
/// tokens of the window still get chunks of 32 (the model cuts their end).
pub fn chunk_with(blocks: &[Block], settings: ChunkSettings, measure: &dyn Measure) -> Vec<Chunk> {
    let mut costs: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < blocks.len() {
        // A section is a run of consecutive blocks with the same path.
        let path = &blocks[start].section_path;
        let end = blocks[start..]
            .iter()
            .position(|b| &b.section_path != path)
            .map_or(blocks.len(), |n| start + n);
        // What a chunk may take in the window beside its headings, and the
        // most the two may take together (more than the window only where
        // the headings leave less than the least room).
        let (room, limit) = match measure.window() {
            Some(window) => {
                let headings = measure.count(&with_headings(path, ""));
                (window.saturating_sub(headings).max(MIN_ROOM), Some(window.max(headings + MIN_ROOM)))
            }
            None => (usize::MAX, None),
        };
        let max = settings.max_tokens.min(room).max(1);
        let overlap = settings.overlap_tokens.min(max / 2);
        let words: Vec<Word<'_>> = blocks[start..end]
            .iter()
            .flat_map(|b| b.text.split_whitespace().map(move |w| (w, b.page)))
            .map(|(text, page)| Word {
                text,
                page,
                tokens: *costs.entry(text).or_insert_with(|| measure.count(text)),
            })
            .collect();
        let mut from = 0;
        while from < words.len() {
            // At least one word, then as many as fit.
            let mut to = from + 1;
            let mut tokens = words[from].tokens;
            while to < words.len() && tokens + words[to].tokens <= max {
                tokens += words[to].tokens;
                to += 1;
            }
            let mut text = join(&words[from..to]);
            if let Some(limit) = limit {
                while to > from + 1 && measure.count(&with_headings(path, &text)) > limit {
                    to -= 1;
                    tokens -= words[to].tokens;
                    text = join(&words[from..to]);
                }
            }
            let window = &words[from..to];
            chunks.push(Chunk {
                text,
                section_path: path.clone(),
                page_start: window.iter().filter_map(|w| w.page).min(),
                page_end: window.iter().filter_map(|w| w.page).max(),
                token_count: tokens,
            });
            if to == words.len() {
                break;
            }
            // Step back over the overlap, always moving forward.
            let mut back = to;
            let mut repeated = 0;
            while back > from + 1 && repeated + words[back - 1].tokens <= overlap {
                repeated += words[back - 1].tokens;
                back -= 1;
            }
            from = back;
        }
        start = end;
    }
    chunks
}

fn join(words: &[Word<'_>]) -> String {
    words.iter().map(|w| w.text).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(path: &[&str], page: Option<u32>, text: &str) -> Block {
        Block {
            section_path: path.iter().map(|s| s.to_string()).collect(),
            page,
            text: text.into(),
            row: None,
        }
    }

    #[test]
    fn chunks_respect_sections_bounds_and_overlap() {
        let words: Vec<String> = (0..25).map(|i| format!("w{i}")).collect();
        let blocks = vec![
            block(&["A"], Some(1), &words[..10].join(" ")),
            block(&["A"], Some(2), &words[10..25].join(" ")),
            block(&["B"], Some(3), "short section"),
        ];
        let chunks = chunk(
            &blocks,
            ChunkSettings {
                max_tokens: 10,
                overlap_tokens: 2,
            },
        );
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts[0], words[..10].join(" "));
        assert!(texts[1].starts_with("w8 w9 w10"), "overlap of two words: {}", texts[1]);
        assert!(chunks.iter().all(|c| c.token_count <= 10));
        let last_a = chunks.iter().rev().find(|c| c.section_path == ["A"]).unwrap();
        assert!(last_a.text.ends_with("w24"), "nothing lost at the end");
        assert_eq!((chunks[0].page_start, chunks[0].page_end), (Some(1), Some(1)));
        assert_eq!(
            (chunks[1].page_start, chunks[1].page_end),
            (Some(1), Some(2)),
            "a chunk spanning pages"
        );
        let b = chunks.last().unwrap();
        assert_eq!(
            (b.section_path.clone(), b.text.as_str(), b.page_start),
            (vec!["B".to_string()], "short section", Some(3))
        );
    }

    /// Tokens are characters (whitespace left out), read in a window of 80.
    struct Characters;

    impl Measure for Characters {
        fn count(&self, text: &str) -> usize {
            text.chars().filter(|c| !c.is_whitespace()).count()
        }

        fn window(&self) -> Option<usize> {
            Some(80)
        }
    }

    #[test]
    fn a_model_window_bounds_each_chunk_with_its_headings_and_loses_no_word() {
        let words: Vec<String> = (0..60).map(|i| format!("word{i}")).collect();
        let blocks = vec![
            block(&["Long heading"], None, &words[..30].join(" ")),
            block(&["Long heading", "Deeper"], None, &words[30..].join(" ")),
        ];
        let settings = ChunkSettings {
            max_tokens: 1000,
            overlap_tokens: 6,
        };
        let chunks = chunk_with(&blocks, settings, &Characters);
        for c in &chunks {
            let seen = Characters.count(&with_headings(&c.section_path, &c.text));
            assert!(seen <= 80, "{seen} tokens seen of {:?}", c.text);
            assert_eq!(c.token_count, Characters.count(&c.text));
        }
        // Both sections need several chunks of the window.
        let count = |path: &[&str]| chunks.iter().filter(|c| c.section_path == path).count();
        assert!(count(&["Long heading"]) >= 3 && count(&["Long heading", "Deeper"]) >= 3);
        // Every word is in a chunk, in order; consecutive chunks overlap.
        for path in [&["Long heading"][..], &["Long heading", "Deeper"]] {
            let section: Vec<&Chunk> = chunks.iter().filter(|c| c.section_path == path).collect();
            let mut seen: Vec<&str> = Vec::new();
            for pair in section.windows(2) {
                let last = pair[0].text.split(' ').next_back().unwrap();
                assert!(
                    pair[1].text.split(' ').any(|w| w == last),
                    "overlap: {:?} then {:?}",
                    pair[0].text,
                    pair[1].text
                );
            }
            for c in &section {
                for w in c.text.split(' ') {
                    if !seen.contains(&w) {
                        seen.push(w);
                    }
                }
            }
            let expected = if path.len() == 1 { &words[..30] } else { &words[30..] };
            assert_eq!(seen, expected.iter().map(String::as_str).collect::<Vec<_>>());
        }
        // Headings that fill the window still leave chunks room for words.
        let deep = "heading".repeat(12);
        let buried = vec![block(&[&deep], None, &words[..20].join(" "))];
        let chunks = chunk_with(&buried, settings, &Characters);
        let (_, full) = chunks.split_last().unwrap();
        assert!(full.len() >= 3 && full.iter().all(|c| c.text.split(' ').count() >= 4), "{chunks:?}");
        // Counting words with no window makes the chunks `chunk` makes.
        assert_eq!(
            chunk_with(&blocks, ChunkSettings::default(), &Words),
            chunk(&blocks, ChunkSettings::default())
        );
    }
}

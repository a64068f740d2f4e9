//! Chunking: structure-aware and token-bounded with overlap. Blocks are packed
//! into chunks that never cross a section boundary; a chunk holds at most
//! `max_tokens` tokens, and the next chunk of the same section repeats the last
//! `overlap_tokens` of it so no sentence loses its context at a cut. A block
//! longer than a chunk is split at word boundaries. Tokens are words here
//! (whitespace-separated), a close enough proxy for model tokens at these sizes.

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

struct Word<'a> {
    text: &'a str,
    page: Option<u32>,
}

/// Chunks `blocks` (in reading order).
pub fn chunk(blocks: &[Block], settings: ChunkSettings) -> Vec<Chunk> {
    let max = settings.max_tokens.max(1);
    let overlap = settings.overlap_tokens.min(max / 2);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < blocks.len() {
        // A section is a run of consecutive blocks with the same path.
        let path = &blocks[start].section_path;
        let end = blocks[start..]
            .iter()
            .position(|b| &b.section_path != path)
            .map_or(blocks.len(), |n| start + n);
        let words: Vec<Word<'_>> = blocks[start..end]
            .iter()
            .flat_map(|b| b.text.split_whitespace().map(move |w| Word { text: w, page: b.page }))
            .collect();
        let mut from = 0;
        while from < words.len() {
            let to = (from + max).min(words.len());
            let window = &words[from..to];
            chunks.push(Chunk {
                text: window.iter().map(|w| w.text).collect::<Vec<_>>().join(" "),
                section_path: path.clone(),
                page_start: window.iter().filter_map(|w| w.page).min(),
                page_end: window.iter().filter_map(|w| w.page).max(),
                token_count: window.len(),
            });
            if to == words.len() {
                break;
            }
            from = to - overlap;
        }
        start = end;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(path: &[&str], page: Option<u32>, text: &str) -> Block {
        Block {
            section_path: path.iter().map(|s| s.to_string()).collect(),
            page,
            text: text.into(),
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
}

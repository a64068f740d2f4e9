#![no_main]
//! The chunker on any blocks. The first two bytes are the chunk size and the
//! overlap; each following line is a block, `#`s at its start pushing that
//! many headings (the line itself), `\f` starting a new page. The blocks are
//! chunked in words, then in characters within a window of twice the chunk
//! size (as a model's tokens would be).

use folio_parse::chunk::{ChunkSettings, Measure, chunk, chunk_with, with_headings};
use folio_parse::parse::Block;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [max, overlap, rest @ ..] = data else { return };
    let settings = ChunkSettings {
        max_tokens: usize::from(*max),
        overlap_tokens: usize::from(*overlap),
    };
    let text = String::from_utf8_lossy(rest);
    let (mut path, mut page, mut blocks) = (Vec::<String>::new(), None::<u32>, Vec::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('\u{c}') {
            page = Some(page.map_or(1, |p| p + 1));
            if rest.is_empty() {
                continue;
            }
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if level > 0 {
            path.truncate(level - 1);
            path.push(line[level..].trim().to_owned());
            continue;
        }
        let text = folio_parse::parse::normalize_whitespace(line);
        if !text.is_empty() {
            blocks.push(Block {
                section_path: path.clone(),
                page,
                text,
                row: None,
            });
        }
    }
    let words: usize = blocks.iter().map(|b| b.text.split_whitespace().count()).sum();
    let chunks = chunk(&blocks, settings);
    let max = settings.max_tokens.max(1);
    let mut covered = 0;
    for chunk in &chunks {
        assert!(chunk.token_count <= max, "{} tokens in a chunk of {max}", chunk.token_count);
        assert_eq!(chunk.token_count, chunk.text.split_whitespace().count());
        assert!(chunk.token_count > 0, "an empty chunk");
        if let (Some(start), Some(end)) = (chunk.page_start, chunk.page_end) {
            assert!(start <= end, "pages {start}..{end}");
        }
        covered += chunk.token_count;
    }
    assert!(covered >= words, "{covered} tokens chunked of {words}");

    // In characters, within a window: a chunk with its headings fits, unless
    // it is one word, or its headings leave less than the least room.
    let measure = Characters(2 * max);
    let mut seen = 0;
    for chunk in chunk_with(&blocks, settings, &measure) {
        let words = chunk.text.split_whitespace().count();
        let headings = measure.count(&with_headings(&chunk.section_path, ""));
        let whole = measure.count(&with_headings(&chunk.section_path, &chunk.text));
        assert!(
            whole <= measure.0 || words == 1 || headings + 32 > measure.0,
            "{whole} characters in a window of {}",
            measure.0
        );
        assert_eq!(chunk.token_count, measure.count(&chunk.text));
        seen += words;
    }
    assert!(seen >= words, "{seen} words chunked of {words}");
});

/// Characters but whitespace, read in a window.
struct Characters(usize);

impl Measure for Characters {
    fn count(&self, text: &str) -> usize {
        text.chars().filter(|c| !c.is_whitespace()).count()
    }

    fn window(&self) -> Option<usize> {
        Some(self.0)
    }
}

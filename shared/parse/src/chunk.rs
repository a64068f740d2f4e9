//! Chunking: structure-aware and token-bounded with overlap. Blocks are packed
//! into chunks that never cross a section boundary; a chunk holds at most
//! `max_tokens` tokens, and the next chunk of the same section repeats the last
//! `overlap_tokens` of it so no sentence loses its context at a cut. A block
//! longer than a chunk is split at word boundaries. A table row is never cut
//! unless it is longer than a chunk by itself, and a chunk that begins in the
//! middle of a table starts with the table's header row (see [`chunk_with`]).
//!
//! Tokens are counted by a [`Measure`]: whitespace-separated words by
//! default ([`Words`]), or an embedding model's own tokens. A model that reads
//! a bounded window of tokens gets chunks that fit in it together with their
//! headings (what it is given is [`with_headings`]), so no part of a chunk is
//! invisible to vector search: a section longer than that is split into more
//! chunks, never cut.

use std::collections::HashMap;
use std::ops::Range;

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
    /// The block it is from, by its index in the blocks chunked.
    block: usize,
    /// Whether that block is a table row.
    in_row: bool,
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
///
/// Table rows (blocks with a [`TableRow`](crate::parse::TableRow)) are kept
/// whole and on lines of their own:
///
/// - A chunk ends before a row that does not fit in it, and gives back a
///   whole row to fit a model's window; only a row longer than a chunk by
///   itself is split, at words, the way a long paragraph is.
/// - The overlap repeats whole rows or none: a row that does not fit in the
///   overlap is not repeated in part.
/// - A chunk that begins in the middle of a table (at a row other than the
///   header, with the table's header row earlier in the document) starts
///   with the header row's text on a line of its own, so it still says what
///   its columns are. The header counts against the chunk's tokens; it is
///   left out where it would take more than half a chunk, or where the
///   chunk's first row would fit whole without it but not beside it (a row
///   too long for any chunk is split anyway, and each of its pieces gets
///   the header).
pub fn chunk_with(blocks: &[Block], settings: ChunkSettings, measure: &dyn Measure) -> Vec<Chunk> {
    let mut costs: HashMap<&str, usize> = HashMap::new();
    let mut cost = |word| *costs.entry(word).or_insert_with(|| measure.count(word));
    let headers = header_rows(blocks);
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
        let words: Vec<Word<'_>> = (start..end)
            .flat_map(|block| {
                let b = &blocks[block];
                b.text.split_whitespace().map(move |text| (text, b.page, block, b.row.is_some()))
            })
            .map(|(text, page, block, in_row)| Word {
                text,
                page,
                tokens: cost(text),
                block,
                in_row,
            })
            .collect();
        let section = Section::new(path, words, max, limit, measure);
        let words = &section.words;
        let mut from = 0;
        while from < words.len() {
            let header = section.header(blocks, &headers, from).map(|text| Header {
                text,
                tokens: text.split_whitespace().map(&mut cost).sum(),
            });
            // The header goes unless it takes more than half a chunk, or its
            // room is what a whole first row misses.
            let first_row = section.units[from].end;
            let packed = match header.filter(|h| h.tokens <= max / 2) {
                Some(header) => {
                    let under = section.pack(from, Some(&header));
                    if under.fits && under.to >= first_row {
                        under
                    } else {
                        let alone = section.pack(from, None);
                        if alone.to >= first_row || !under.fits { alone } else { under }
                    }
                }
                None => section.pack(from, None),
            };
            let Packed { to, tokens, text, .. } = packed;
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
            from = section.overlap_start(from, to, overlap);
        }
        start = end;
    }
    chunks
}

/// Each table's header row, by the table's number: the index of the first
/// header row block of it.
fn header_rows(blocks: &[Block]) -> HashMap<u32, usize> {
    let mut headers = HashMap::new();
    for (index, block) in blocks.iter().enumerate() {
        if let Some(row) = block.row.as_ref().filter(|row| row.header) {
            headers.entry(row.table).or_insert(index);
        }
    }
    headers
}

/// A table's header row, repeated at the top of a chunk that begins inside
/// the table.
#[derive(Clone, Copy)]
struct Header<'a> {
    text: &'a str,
    tokens: usize,
}

/// A chunk's words, up to `to`, and its text.
struct Packed {
    to: usize,
    tokens: usize,
    text: String,
    /// Whether it is within the bounds; a chunk of one word may not be,
    /// and one under a header should be.
    fits: bool,
}

/// The words of one section and the units they are cut in.
struct Section<'a, 'm> {
    path: &'a [String],
    words: Vec<Word<'a>>,
    /// For each word, the words of its unit: those of its table row, or
    /// itself alone for a word of any other block.
    units: Vec<Range<usize>>,
    /// The most tokens of a chunk, its repeated header row included.
    max: usize,
    /// The most tokens a chunk and its headings may take in a model's window.
    limit: Option<usize>,
    measure: &'m dyn Measure,
}

impl<'a, 'm> Section<'a, 'm> {
    fn new(path: &'a [String], words: Vec<Word<'a>>, max: usize, limit: Option<usize>, measure: &'m dyn Measure) -> Self {
        let mut units: Vec<Range<usize>> = Vec::with_capacity(words.len());
        let mut first = 0;
        for (index, word) in words.iter().enumerate() {
            let next = words.get(index + 1);
            if !(word.in_row && next.is_some_and(|next| next.block == word.block)) {
                units.extend(std::iter::repeat_n(first..index + 1, index + 1 - first));
                first = index + 1;
            }
        }
        Section {
            path,
            words,
            units,
            max,
            limit,
            measure,
        }
    }

    /// The text of the header row to repeat above a chunk that begins at
    /// word `from`: when that word is in a row of a table other than its
    /// header row, and the header row came before it.
    fn header<'b>(&self, blocks: &'b [Block], headers: &HashMap<u32, usize>, from: usize) -> Option<&'b str> {
        let block = self.words[from].block;
        let row = blocks[block].row.as_ref().filter(|row| !row.header)?;
        let header = *headers.get(&row.table).filter(|&&header| header < block)?;
        Some(&blocks[header].text)
    }

    /// The chunk that begins at word `from`, under `header` if any: at least
    /// one word, then as many as fit, ending between units unless its first
    /// unit alone is too long; within a model's window, units are given back
    /// from its end until it fits with its headings.
    fn pack(&self, from: usize, header: Option<&Header<'_>>) -> Packed {
        let words = &self.words;
        let tokens_of = |range: Range<usize>| -> usize { words[range].iter().map(|w| w.tokens).sum() };
        let max = self.max - header.map_or(0, |h| h.tokens);
        let mut to = from + 1;
        let mut tokens = words[from].tokens;
        while to < words.len() && tokens + words[to].tokens <= max {
            tokens += words[to].tokens;
            to += 1;
        }
        // A row cut by the end goes whole to the next chunk, unless it is the
        // row this chunk begins with.
        let last = &self.units[to - 1];
        if last.end > to && last.start > from {
            tokens -= tokens_of(last.start..to);
            to = last.start;
        }
        let mut text = self.text(from, to, header);
        if let Some(limit) = self.limit {
            while to > from + 1 && self.measure.count(&with_headings(self.path, &text)) > limit {
                let last = &self.units[to - 1];
                let back = if last.start > from { last.start } else { to - 1 };
                tokens -= tokens_of(back..to);
                to = back;
                text = self.text(from, to, header);
            }
        }
        let tokens = tokens + header.map_or(0, |h| h.tokens);
        let fits = header.is_none()
            || tokens <= self.max
                && self
                    .limit
                    .is_none_or(|limit| self.measure.count(&with_headings(self.path, &text)) <= limit);
        Packed { to, tokens, text, fits }
    }

    /// Where the chunk after `from..to` begins: back over at most `overlap`
    /// tokens of whole units (of words one by one in a row that is cut
    /// anyway), always after `from`.
    fn overlap_start(&self, from: usize, to: usize, overlap: usize) -> usize {
        let mut back = to;
        let mut repeated = 0;
        while back > from + 1 {
            let unit = &self.units[back - 1];
            let whole_row = self.words[back - 1].in_row && unit.start >= from && unit.end <= to;
            let step = match (whole_row, unit.start > from) {
                (false, _) => back - 1,
                (true, true) => unit.start,
                // The chunk's first row, which cannot be repeated whole.
                (true, false) => break,
            };
            let tokens: usize = self.words[step..back].iter().map(|w| w.tokens).sum();
            if repeated + tokens > overlap {
                break;
            }
            repeated += tokens;
            back = step;
        }
        back
    }

    /// The words `from..to` under `header`: a header and each row on lines
    /// of their own, other words joined by spaces.
    fn text(&self, from: usize, to: usize, header: Option<&Header<'_>>) -> String {
        let mut text = header.map(|h| format!("{}\n", h.text)).unwrap_or_default();
        for (index, word) in self.words[from..to].iter().enumerate() {
            if index > 0 {
                let before = &self.words[from + index - 1];
                let new_line = before.block != word.block && (before.in_row || word.in_row);
                text.push(if new_line { '\n' } else { ' ' });
            }
            text.push_str(word.text);
        }
        text
    }
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

    /// A row of table `table` with `cells`, the header if `header`.
    fn row(path: &[&str], table: u32, header: bool, cells: &[&str]) -> Block {
        let text = cells.iter().filter(|c| !c.is_empty()).copied().collect::<Vec<_>>().join(" | ");
        Block {
            row: Some(crate::parse::TableRow {
                table,
                header,
                cells: cells.iter().map(|c| c.to_string()).collect(),
            }),
            ..block(path, None, &text)
        }
    }

    /// A paragraph, then a table of a header and `rows` rows of 6 words each
    /// ("pkgN | N.0 | N kB"), then a paragraph.
    fn long_table(rows: usize) -> (Vec<Block>, Vec<String>) {
        let mut blocks = vec![block(&["Packages"], None, "The packages this chapter installs are these.")];
        blocks.push(row(&["Packages"], 0, true, &["Package", "Version", "Size"]));
        let mut texts = Vec::new();
        for n in 0..rows {
            let b = row(
                &["Packages"],
                0,
                false,
                &[&format!("pkg{n}"), &format!("{n}.0"), &format!("{n} kB")],
            );
            texts.push(b.text.clone());
            blocks.push(b);
        }
        blocks.push(block(&["Packages"], None, "That is all of them."));
        (blocks, texts)
    }

    /// Every line of a chunk that names a package is a whole row.
    fn assert_rows_whole(chunks: &[Chunk], rows: &[String]) {
        for c in chunks {
            for line in c.text.lines().filter(|l| l.contains("pkg")) {
                assert!(rows.iter().any(|r| r == line), "a row cut in two: {line:?} in {:?}", c.text);
            }
        }
    }

    #[test]
    fn a_long_table_is_cut_between_rows_and_each_chunk_starts_with_its_header() {
        let (blocks, rows) = long_table(40);
        let settings = ChunkSettings {
            max_tokens: 40,
            overlap_tokens: 8,
        };
        let chunks = chunk(&blocks, settings);
        assert!(chunks.len() >= 6, "{chunks:#?}");
        assert!(
            chunks[0]
                .text
                .starts_with("The packages this chapter installs are these.\nPackage | Version | Size\npkg0 | 0.0 | 0 kB\n")
        );
        for c in &chunks[1..] {
            assert_eq!(c.text.lines().next(), Some("Package | Version | Size"), "{:?}", c.text);
            assert!(c.token_count <= 40 && c.token_count == c.text.split_whitespace().count());
        }
        assert_rows_whole(&chunks, &rows);
        // Every row is in a chunk, and the overlap repeats one whole row (6
        // words of the 8 allowed).
        for r in &rows {
            assert!(chunks.iter().any(|c| c.text.lines().any(|l| l == r)), "{r} lost");
        }
        for pair in chunks.windows(2) {
            let last = pair[0].text.lines().last().unwrap();
            assert_eq!(
                pair[1].text.lines().nth(1),
                Some(last),
                "{:?} then {:?}",
                pair[0].text,
                pair[1].text
            );
        }
        assert!(chunks.last().unwrap().text.ends_with("\nThat is all of them."));
    }

    #[test]
    fn rows_stay_whole_in_a_model_window_with_their_header() {
        let (blocks, rows) = long_table(30);
        let settings = ChunkSettings {
            max_tokens: 1000,
            overlap_tokens: 10,
        };
        let chunks = chunk_with(&blocks, settings, &Characters);
        assert!(chunks.len() >= 4, "{chunks:#?}");
        for c in &chunks {
            let seen = Characters.count(&with_headings(&c.section_path, &c.text));
            assert!(seen <= 80, "{seen} tokens seen of {:?}", c.text);
            assert_eq!(c.token_count, Characters.count(&c.text));
        }
        // Each chunk after the first starts with the header, but the one
        // that begins with the paragraph after the table.
        let (last, middle) = chunks[1..].split_last().unwrap();
        for c in middle {
            assert_eq!(c.text.lines().next(), Some("Package | Version | Size"), "{:?}", c.text);
        }
        assert!(
            last.text.starts_with("Package | Version | Size\n") || last.text.starts_with("That"),
            "{:?}",
            last.text
        );
        assert_rows_whole(&chunks, &rows);
    }

    #[test]
    fn only_a_row_longer_than_a_chunk_is_split_and_a_long_header_is_not_repeated() {
        let words: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
        let blocks = vec![
            row(&[], 0, true, &["Term", "Meaning"]),
            row(&[], 0, false, &["a", "first"]),
            row(&[], 0, false, &["long", &words.join(" ")]),
            row(&[], 0, false, &["z", "last"]),
        ];
        let settings = ChunkSettings {
            max_tokens: 12,
            overlap_tokens: 0,
        };
        let chunks = chunk(&blocks, settings);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        // The long row moves whole to a chunk of its own and is split there,
        // each piece under the header; the next row joins its last piece.
        assert_eq!(
            texts,
            [
                "Term | Meaning\na | first",
                "Term | Meaning\nlong | w0 w1 w2 w3 w4 w5 w6",
                "Term | Meaning\nw7 w8 w9 w10 w11 w12 w13 w14 w15",
                "Term | Meaning\nw16 w17 w18 w19 w20 w21 w22 w23 w24",
                "Term | Meaning\nw25 w26 w27 w28 w29\nz | last",
            ]
        );
        assert!(chunks.iter().all(|c| c.token_count <= 12));
        let mut seen: Vec<&str> = Vec::new();
        for t in &texts {
            seen.extend(t.split_whitespace().filter(|w| w.starts_with('w')));
        }
        assert_eq!(
            seen,
            words.iter().map(String::as_str).collect::<Vec<_>>(),
            "every word once, in order"
        );

        // A header of more than half a chunk is not repeated.
        let wide: Vec<String> = (0..5).map(|i| format!("column{i}")).collect();
        let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
        let mut blocks = vec![row(&[], 3, true, &wide)];
        blocks.extend((0..10).map(|n| row(&[], 3, false, &[&format!("v{n}"), "x"])));
        let chunks = chunk(&blocks, settings);
        assert!(
            chunks.len() > 2 && chunks[1..].iter().all(|c| c.text.starts_with('v')),
            "{chunks:#?}"
        );
    }

    #[test]
    fn a_table_continued_under_another_heading_or_without_a_known_header_gets_no_header_but_its_own() {
        let blocks = vec![
            row(&["A"], 0, true, &["Name", "Size"]),
            row(&["A"], 0, false, &["one", "1"]),
            row(&["B"], 0, false, &["two", "2"]),
            row(&["B"], 1, false, &["orphan", "row"]),
            block(&["B"], None, "after the table"),
        ];
        let chunks = chunk(&blocks, ChunkSettings::default());
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            ["Name | Size\none | 1", "Name | Size\ntwo | 2\norphan | row\nafter the table"],
            "a section that begins inside a table starts with its header; a table without a header row gets none"
        );
    }
}

//! HTML: the text of a web page or an exported document, with its headings.
//!
//! `h1`..`h6` build the section path (by the rules of [`BlockBuilder`]);
//! paragraphs, list items, definition terms, `pre` blocks and the text of any
//! other block-level element become blocks. Each `<table>` is a table whose
//! rows (`<tr>`) become blocks of their cells (`<th>`, `<td>`); its first row
//! is its header row, which is the row of `<thead>` or of `<th>` cells in the
//! tables that have one, and the first data row in those that do not (a
//! Markdown table needs one). A table nested in a cell flows into that cell's
//! text; spanning cells (`colspan`, `rowspan`) are one cell each. `<title>` is
//! the title. `script`, `style`, `noscript`, `template` and comments are
//! dropped.
//!
//! The bytes are decoded as UTF-8 unless a byte-order mark or a `<meta charset>`
//! (or `http-equiv` content type) within the first 1024 bytes names another
//! encoding, which `encoding_rs` then decodes. The markup is read with
//! html5ever's tokenizer, the WHATWG algorithm browsers use, so character
//! references (all named entities) are decoded and raw-text elements such as
//! `<script>` cannot leak markup into the text. No tree is built: the parser
//! keeps only the current heading path, the text being gathered and the current
//! table row, so memory stays proportional to the output.

use std::cell::RefCell;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use html5ever::TokenizerResult;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts};

use super::blocks::BlockBuilder;
use super::{Budget, ParseError, ParsedDocument, normalize_whitespace};

/// How far into the document a `<meta charset>` is looked for, as browsers do.
const CHARSET_PRESCAN_BYTES: usize = 1024;

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    let mut builder = BlockBuilder::new(budget);
    let title = feed(bytes, &mut builder)?;
    Ok(ParsedDocument {
        title,
        pages: None,
        blocks: builder.finish()?,
        ..ParsedDocument::default()
    })
}

/// Reads one HTML document into `builder`, which may already hold the blocks
/// of others (an EPUB's earlier chapters) and goes on to take more; returns
/// the document's `<title>`. Headings stay open for what follows.
pub fn feed(bytes: &[u8], builder: &mut BlockBuilder<'_, '_>) -> Result<Option<String>, ParseError> {
    let source = decode(bytes);
    builder.budget().check_time()?;
    let sink = Collector {
        state: RefCell::new(State::new(builder)),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from(source));
    // The sink pauses the tokenizer (by answering a token with `Script`) once it
    // has recorded an error, so a spent budget stops the work early.
    while let TokenizerResult::Script(()) | TokenizerResult::EncodingIndicator(_) = tokenizer.feed(&input) {
        if tokenizer.sink.state.borrow().error.is_some() {
            break;
        }
    }
    if tokenizer.sink.state.borrow().error.is_none() {
        tokenizer.end();
    }
    let state = tokenizer.sink.state.into_inner();
    state.finish()
}

/// Decodes the bytes: a byte-order mark wins, then a `<meta>` charset
/// declaration, and UTF-8 otherwise. Malformed sequences become U+FFFD.
fn decode(bytes: &[u8]) -> String {
    if let Some((encoding, bom_length)) = Encoding::for_bom(bytes) {
        return encoding.decode_without_bom_handling(&bytes[bom_length..]).0.into_owned();
    }
    let encoding = declared_charset(&bytes[..bytes.len().min(CHARSET_PRESCAN_BYTES)]).unwrap_or(UTF_8);
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}

/// Finds the encoding that a `<meta charset=...>` or a `<meta http-equiv
/// content="text/html; charset=...">` in `head` declares. As in browsers, a
/// declared UTF-16 means UTF-8 (the bytes were ASCII-compatible enough to be
/// read) and `x-user-defined` means windows-1252.
fn declared_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut from = 0;
    while let Some(offset) = find(&lower[from..], b"<meta") {
        let start = from + offset + b"<meta".len();
        let end = find(&lower[start..], b">").map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        from = end;
        let Some(at) = find(tag, b"charset") else { continue };
        let rest = tag[at + b"charset".len()..].trim_ascii_start();
        let Some(rest) = rest.strip_prefix(b"=") else { continue };
        let rest = rest.trim_ascii_start();
        let rest = rest.strip_prefix(b"\"").or_else(|| rest.strip_prefix(b"'")).unwrap_or(rest);
        let label_end = rest
            .iter()
            .position(|&b| matches!(b, b'"' | b'\'' | b';' | b'/') || b.is_ascii_whitespace());
        let label = &rest[..label_end.unwrap_or(rest.len())];
        if let Some(encoding) = Encoding::for_label(label) {
            return Some(match encoding.name() {
                "UTF-16LE" | "UTF-16BE" => UTF_8,
                "x-user-defined" => WINDOWS_1252,
                _ => encoding,
            });
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Receives the tokens; the tokenizer hands it out by shared reference, hence
/// the `RefCell`.
struct Collector<'s, 'b, 'l> {
    state: RefCell<State<'s, 'b, 'l>>,
}

impl TokenSink for Collector<'_, '_, '_> {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        // Only the answer to a tag is read by the tokenizer; it must be
        // `Continue` for every other token. So an error met in text stops the
        // tokenizer at the next tag.
        let mut state = self.state.borrow_mut();
        let is_tag = matches!(token, Token::TagToken(_));
        if state.error.is_some() {
            return if is_tag {
                TokenSinkResult::Script(())
            } else {
                TokenSinkResult::Continue
            };
        }
        let result = match token {
            Token::TagToken(tag) => state.tag(&tag),
            Token::CharacterTokens(text) => state.text(&text).map(|()| TokenSinkResult::Continue),
            _ => Ok(TokenSinkResult::Continue),
        };
        match result {
            Ok(next) => next,
            Err(error) => {
                state.error = Some(error);
                if is_tag {
                    TokenSinkResult::Script(())
                } else {
                    TokenSinkResult::Continue
                }
            }
        }
    }
}

/// An element whose content is dropped until its end tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skipped {
    /// Raw text (`script`, `style`, `noscript` and the like): the tokenizer
    /// itself ends it at the matching end tag, so no nesting is possible.
    Raw(&'static str),
    /// `template` holds ordinary markup, so templates nest.
    Template(usize),
}

struct State<'s, 'b, 'l> {
    builder: &'s mut BlockBuilder<'b, 'l>,
    error: Option<ParseError>,
    title: Option<String>,
    in_title: bool,
    title_text: String,
    /// The heading being read, if any: its level and text so far.
    heading: Option<(usize, String)>,
    /// The text of the block being gathered.
    current: String,
    pre_depth: usize,
    skipped: Option<Skipped>,
    svg_depth: usize,
    /// Nesting of tables: `tr`, `td` and `th` outside any table are ordinary
    /// elements (the builder keeps a nested table's text in the outer cell).
    table_depth: usize,
}

/// Elements that end the text before them and start a new block.
fn is_block_level(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "body"
            | "caption"
            | "center"
            | "dd"
            | "details"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "head"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "legend"
            | "li"
            | "listing"
            | "main"
            | "menu"
            | "nav"
            | "ol"
            | "option"
            | "p"
            | "pre"
            | "section"
            | "summary"
            | "table"
            | "tbody"
            | "tfoot"
            | "thead"
            | "tr"
            | "ul"
            | "xmp"
    )
}

fn heading_level(name: &str) -> Option<usize> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

impl<'s, 'b, 'l> State<'s, 'b, 'l> {
    fn new(builder: &'s mut BlockBuilder<'b, 'l>) -> Self {
        State {
            builder,
            error: None,
            title: None,
            in_title: false,
            title_text: String::new(),
            heading: None,
            current: String::new(),
            pre_depth: 0,
            skipped: None,
            svg_depth: 0,
            table_depth: 0,
        }
    }

    fn tag(&mut self, tag: &Tag) -> Result<TokenSinkResult<()>, ParseError> {
        self.builder.budget().check_time()?;
        let name: &str = &tag.name;
        let start = tag.kind == TagKind::StartTag;
        match self.skipped {
            Some(Skipped::Raw(element)) => {
                if !start && name == element {
                    self.skipped = None;
                }
                return Ok(TokenSinkResult::Continue);
            }
            Some(Skipped::Template(depth)) => {
                self.skipped = match (name, start) {
                    ("template", true) if !tag.self_closing => Some(Skipped::Template(depth + 1)),
                    ("template", false) if depth > 1 => Some(Skipped::Template(depth - 1)),
                    ("template", false) => None,
                    _ => Some(Skipped::Template(depth)),
                };
                return Ok(TokenSinkResult::Continue);
            }
            None => {}
        }
        if start {
            self.start_tag(name, tag.self_closing)
        } else {
            self.end_tag(name)?;
            Ok(TokenSinkResult::Continue)
        }
    }

    fn start_tag(&mut self, name: &str, self_closing: bool) -> Result<TokenSinkResult<()>, ParseError> {
        // Elements whose content is never text: the tokenizer is switched to
        // the state a browser would use so their content cannot open tags.
        let raw = match name {
            "script" => Some((RawKind::ScriptData, "script")),
            "style" => Some((RawKind::Rawtext, "style")),
            "noscript" => Some((RawKind::Rawtext, "noscript")),
            "iframe" => Some((RawKind::Rawtext, "iframe")),
            "noembed" => Some((RawKind::Rawtext, "noembed")),
            "noframes" => Some((RawKind::Rawtext, "noframes")),
            "textarea" => Some((RawKind::Rcdata, "textarea")),
            _ => None,
        };
        if let Some((kind, element)) = raw {
            if self_closing {
                return Ok(TokenSinkResult::Continue);
            }
            // A textarea's text is user-visible, so only the first five are dropped.
            if element == "textarea" {
                return Ok(TokenSinkResult::RawData(kind));
            }
            self.skipped = Some(Skipped::Raw(element));
            return Ok(TokenSinkResult::RawData(kind));
        }
        match name {
            "template" if !self_closing => self.skipped = Some(Skipped::Template(1)),
            // An SVG title is a tooltip, not the document's title nor its text.
            "title" if self.svg_depth > 0 && !self_closing => self.skipped = Some(Skipped::Raw("title")),
            "title" if !self_closing => {
                self.in_title = true;
                self.title_text.clear();
                return Ok(TokenSinkResult::RawData(RawKind::Rcdata));
            }
            "svg" if !self_closing => self.svg_depth += 1,
            "br" => self.push_text(if self.pre_depth > 0 { "\n" } else { " " }),
            "table" => {
                self.flush()?;
                self.builder.start_table()?;
                self.table_depth += 1;
            }
            "tr" if self.table_depth > 0 => self.builder.start_row()?,
            "td" | "th" if self.table_depth > 0 => self.builder.start_cell(),
            _ if self.builder.in_cell() => {
                // Inside a cell, block-level markup only separates words.
                if is_block_level(name) || heading_level(name).is_some() {
                    self.push_text(" ");
                }
            }
            _ if self.heading.is_some() => {
                // As in browsers, a heading holds the block-level elements inside
                // it until its end tag or the next heading.
                if let Some(level) = heading_level(name) {
                    self.end_heading()?;
                    self.heading = Some((level, String::new()));
                } else if is_block_level(name) {
                    self.push_text(" ");
                }
            }
            _ => {
                if let Some(level) = heading_level(name) {
                    self.flush()?;
                    self.heading = Some((level, String::new()));
                } else if is_block_level(name) {
                    self.flush()?;
                    if matches!(name, "pre" | "listing" | "xmp") {
                        self.pre_depth += 1;
                    }
                }
            }
        }
        Ok(TokenSinkResult::Continue)
    }

    fn end_tag(&mut self, name: &str) -> Result<(), ParseError> {
        match name {
            "title" if self.in_title => {
                self.in_title = false;
                let title = normalize_whitespace(&self.title_text);
                if self.title.is_none() && !title.is_empty() {
                    self.builder.budget().take_text(&title)?;
                    self.title = Some(title);
                }
            }
            "svg" => self.svg_depth = self.svg_depth.saturating_sub(1),
            "table" if self.table_depth > 0 => {
                self.builder.end_table()?;
                if self.table_depth == 1 {
                    self.flush()?;
                }
                self.table_depth -= 1;
            }
            "tr" if self.table_depth > 0 => self.builder.end_row()?,
            "td" | "th" if self.table_depth > 0 => self.builder.end_cell(),
            _ if self.builder.in_cell() => {
                if is_block_level(name) || heading_level(name).is_some() {
                    self.push_text(" ");
                }
            }
            _ if self.heading.is_some() => {
                if heading_level(name).is_some() {
                    self.end_heading()?;
                } else if is_block_level(name) {
                    self.push_text(" ");
                }
            }
            _ => {
                if is_block_level(name) {
                    self.flush()?;
                    if matches!(name, "pre" | "listing" | "xmp") {
                        self.pre_depth = self.pre_depth.saturating_sub(1);
                    }
                }
            }
        }
        Ok(())
    }

    fn text(&mut self, text: &str) -> Result<(), ParseError> {
        if self.skipped.is_some() {
            return Ok(());
        }
        if self.in_title {
            self.title_text.push_str(text);
            return Ok(());
        }
        self.push_text(text);
        // Text without markup can be long; the budget is checked here too so a
        // huge text run is refused before it is copied again.
        let cell = self.builder.open_cell().map_or(0, |c| c.len());
        let gathered = self.current.len() + cell + self.heading.as_ref().map_or(0, |(_, h)| h.len());
        self.builder.budget().check_gathered(gathered)
    }

    /// Adds text to the open heading, cell or block, in that order.
    fn push_text(&mut self, text: &str) {
        if let Some(cell) = self.builder.open_cell() {
            cell.push_str(text);
        } else if let Some((_, heading)) = self.heading.as_mut() {
            heading.push_str(text);
        } else {
            self.current.push_str(text);
        }
    }

    fn end_heading(&mut self) -> Result<(), ParseError> {
        match self.heading.take() {
            Some((level, text)) => self.builder.heading(level, &text),
            None => Ok(()),
        }
    }

    /// Ends the open heading (a block-level element closes it) and emits the
    /// text gathered so far as a block.
    fn flush(&mut self) -> Result<(), ParseError> {
        self.end_heading()?;
        let text = std::mem::take(&mut self.current);
        if self.pre_depth > 0 {
            self.builder.preformatted(&text)
        } else {
            self.builder.paragraph(&text)
        }
    }

    /// Ends the document's open row and text, and hands its title over.
    fn finish(mut self) -> Result<Option<String>, ParseError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        self.builder.end_row()?;
        self.flush()?;
        if self.title.is_none() && self.in_title {
            // An unterminated <title> still names the document.
            let title = normalize_whitespace(&self.title_text);
            if !title.is_empty() {
                self.title = Some(title);
            }
        }
        Ok(self.title)
    }
}

#[cfg(test)]
mod tests;

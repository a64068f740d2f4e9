//! PDF: the text of each page, split into paragraphs, with the page number on
//! every block. The title comes from the document information dictionary, and
//! the outline (bookmarks), when there is one, gives the section path (by the
//! rules of [`BlockBuilder`], a bookmark's nesting being its level): a bookmark
//! takes effect at the paragraph on its page that starts with its title, or,
//! when no paragraph there does, at the top of the next page.
//!
//! lopdf reads the file. It was chosen over pdf-extract and pdf_oxide by
//! measurement on five PDFs that Debian packages ship: with the layout below it
//! agrees with `pdftotext` as well as the best of them, runs several times
//! faster, is the only one that bounds every inflation per call, and brings a
//! third of pdf_oxide's dependencies.
//!
//! Every stream it inflates is bounded by `max_pdf_stream_bytes` while it is
//! inflated: object and cross-reference streams through
//! `LoadOptions::max_decompressed_size`, page contents through
//! `get_page_content_with_limit` (the page's streams together), form XObjects
//! through `decompressed_content_with_limit`, and `/ToUnicode` maps through
//! `get_font_encoding_with_limit`. Images and embedded font programs are never
//! inflated. A stream over the bound is a [`ParseError::LimitExceeded`].
//!
//! lopdf's own `extract_text` concatenates the strings of a page without
//! looking at where they are drawn, which glues words together in files that
//! position each word (Ghostscript's, for instance). So this module walks the
//! content operators itself, tracks the text and transformation matrices and
//! the glyph widths, and puts a space where the pen jumps forward, a line break
//! where it moves down a line and a paragraph break where it moves down further
//! than a line or back up.
//!
//! A file that needs a password to open is [`ParseError::Encrypted`]; one that
//! is encrypted with an empty user password (the "owner password only" files
//! that any viewer opens) is decrypted and read. lopdf must not take the worker
//! down on hostile input, so the whole parse runs under `catch_unwind` and a
//! panic is reported as a corrupt file.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use lopdf::content::Content;
use lopdf::{DecompressError, Dictionary, Document, Encoding, LoadOptions, Object, ObjectId};

use super::blocks::BlockBuilder;
use super::{Budget, ParseError, ParsedDocument, normalize_whitespace};

const FORMAT: &str = "pdf";
/// How many content operators pass between two checks of the time budget.
const OPERATORS_PER_TIME_CHECK: usize = 1024;
/// How deep form XObjects may nest, and how many may be drawn on one page, so a
/// form that draws itself or a fan of forms cannot loop or explode.
const MAX_FORM_DEPTH: usize = 8;
const MAX_FORMS_PER_PAGE: usize = 512;
/// How deep `q` may nest; deeper saves are ignored.
const MAX_GRAPHICS_STACK: usize = 256;

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    // `AssertUnwindSafe` is sound here: after a panic the budget is only read
    // again by the caller, and a half-updated text count errs on the safe side.
    match catch_unwind(AssertUnwindSafe(|| parse_document(bytes, budget))) {
        Ok(result) => result,
        Err(_) => Err(corrupt("the PDF reader failed on this file")),
    }
}

fn corrupt(detail: impl Into<String>) -> ParseError {
    ParseError::Corrupt {
        format: FORMAT,
        detail: detail.into(),
    }
}

fn stream_limit(limit: usize) -> ParseError {
    ParseError::LimitExceeded(format!("a PDF stream inflates to more than {limit} bytes"))
}

/// Maps a lopdf error: a size-limit violation is a limit, a failed decryption
/// means a password is needed, anything else is corruption.
fn pdf_error(error: lopdf::Error, limit: usize) -> ParseError {
    match error {
        lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. }) => stream_limit(limit),
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword | lopdf::Error::UnsupportedSecurityHandler(_) => {
            ParseError::Encrypted { format: FORMAT }
        }
        other => corrupt(other.to_string()),
    }
}

fn parse_document(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    // Without the signature lopdf would try to rebuild a cross-reference table
    // from arbitrary bytes; a PDF has it within its first kilobyte.
    if !bytes[..bytes.len().min(1024)].windows(5).any(|w| w == b"%PDF-") {
        return Err(corrupt("no %PDF- header"));
    }
    let limit = budget.limits().max_pdf_stream_bytes;
    let options = LoadOptions {
        max_decompressed_size: Some(limit),
        ..LoadOptions::default()
    };
    let document = Document::load_mem_with_options(bytes, options).map_err(|e| pdf_error(e, limit))?;
    // lopdf loads a file it cannot decrypt without failing, leaving its
    // strings and streams encrypted; only a successful decryption sets the
    // encryption state.
    if document.is_encrypted() && !document.was_encrypted() {
        return Err(ParseError::Encrypted { format: FORMAT });
    }
    budget.check_time()?;
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(corrupt("the document has no pages"));
    }
    let title = info_title(&document);
    if let Some(title) = &title {
        budget.take_text(title)?;
    }
    let outline = outline(&document);
    let mut next_bookmark = 0;
    let mut builder = BlockBuilder::new(budget);
    for (&number, &page_id) in &pages {
        builder.budget().check_time()?;
        let paragraphs = page_text(&document, page_id, builder.budget())?;
        builder.start_page(number);
        // The bookmarks that point before this page apply from its top.
        while let Some(bookmark) = outline.get(next_bookmark).filter(|b| b.page < number) {
            builder.heading(bookmark.level, &bookmark.title)?;
            next_bookmark += 1;
        }
        for paragraph in paragraphs {
            // A bookmark on this page applies from the paragraph that starts with
            // its title.
            while let Some(bookmark) = outline
                .get(next_bookmark)
                .filter(|b| b.page == number && starts_with_title(&paragraph, &b.title))
            {
                builder.heading(bookmark.level, &bookmark.title)?;
                next_bookmark += 1;
            }
            builder.paragraph(&paragraph)?;
        }
    }
    Ok(ParsedDocument {
        title,
        pages: Some(u32::try_from(pages.len()).unwrap_or(u32::MAX)),
        blocks: builder.finish()?,
    })
}

/// The `/Title` of the document information dictionary.
fn info_title(document: &Document) -> Option<String> {
    let info = document.trailer.get(b"Info").ok()?;
    let (_, info) = document.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = document.dereference(title).ok()?;
    let title = normalize_whitespace(&lopdf::decode_text_string(title).ok()?);
    (!title.is_empty()).then_some(title)
}

/// One outline entry: its nesting level (1 at the top), title and page.
#[derive(Debug)]
struct Bookmark {
    level: usize,
    title: String,
    page: u32,
}

/// The outline in page order; a file without one, or with a broken one, has
/// none.
fn outline(document: &Document) -> Vec<Bookmark> {
    let Ok(toc) = document.get_toc() else {
        return Vec::new();
    };
    let mut bookmarks: Vec<Bookmark> = toc
        .toc
        .into_iter()
        .filter_map(|entry| {
            let title = normalize_whitespace(&entry.title);
            let page = u32::try_from(entry.page).ok()?;
            (!title.is_empty()).then_some(Bookmark {
                level: entry.level,
                title,
                page,
            })
        })
        .collect();
    // A stable sort keeps the outline's order among the bookmarks of one page.
    bookmarks.sort_by_key(|b| b.page);
    bookmarks
}

fn starts_with_title(paragraph: &str, title: &str) -> bool {
    let mut paragraph = paragraph.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase);
    title
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .all(|t| paragraph.next() == Some(t))
}

/// A 2-D affine matrix `[a b c d e f]`, as PDF writes them.
type Matrix = [f64; 6];

const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `m × n`: apply `m`, then `n`.
fn multiply(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

fn translation(x: f64, y: f64) -> Matrix {
    [1.0, 0.0, 0.0, 1.0, x, y]
}

/// What this module needs of a font: how to turn its codes into text, and how
/// far each code moves the pen.
struct Font<'d> {
    encoding: Option<Encoding<'d>>,
    /// Codes are two bytes (composite fonts) rather than one.
    two_byte: bool,
    /// Glyph widths in thousandths of the font size, by code.
    widths: HashMap<u32, f64>,
    default_width: f64,
}

impl<'d> Font<'d> {
    fn load(document: &'d Document, font: &'d Dictionary, limit: usize) -> Result<Self, ParseError> {
        let encoding = match font.get_font_encoding_with_limit(document, limit) {
            Ok(encoding) => Some(encoding),
            Err(lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. })) => return Err(stream_limit(limit)),
            // The text of a font whose encoding cannot be read is lost, not the page.
            Err(_) => None,
        };
        let deref = |object: &'d Object| document.dereference(object).map(|(_, o)| o).ok();
        let number = |object: &'d Object| deref(object).and_then(|o| o.as_float().ok()).map(f64::from);
        let mut widths = HashMap::new();
        let two_byte = font.get(b"Subtype").and_then(Object::as_name).is_ok_and(|s| s == b"Type0");
        let default_width;
        if two_byte {
            let descendant = font
                .get(b"DescendantFonts")
                .ok()
                .and_then(deref)
                .and_then(|o| o.as_array().ok())
                .and_then(|a| a.first())
                .and_then(deref)
                .and_then(|o| o.as_dict().ok());
            default_width = descendant.and_then(|d| d.get(b"DW").ok()).and_then(number).unwrap_or(1000.0);
            // `/W` lists either `first [w1 w2 ...]` or `first last w`.
            if let Some(list) = descendant
                .and_then(|d| d.get(b"W").ok())
                .and_then(deref)
                .and_then(|o| o.as_array().ok())
            {
                let mut items = list.iter();
                while let Some(first) = items.next().and_then(number) {
                    let first = first as u32;
                    match items.next().and_then(deref) {
                        Some(Object::Array(run)) => {
                            for (offset, width) in run.iter().enumerate().take(65_536) {
                                if let Some(width) = number(width) {
                                    widths.insert(first.saturating_add(offset as u32), width);
                                }
                            }
                        }
                        Some(last) => {
                            let (Some(last), Some(width)) = (number(last), items.next().and_then(number)) else {
                                break;
                            };
                            for code in first..=(last as u32).min(first.saturating_add(65_536)) {
                                widths.insert(code, width);
                            }
                        }
                        None => break,
                    }
                }
            }
        } else {
            let first = font.get(b"FirstChar").ok().and_then(number).unwrap_or(0.0) as u32;
            if let Some(list) = font.get(b"Widths").ok().and_then(deref).and_then(|o| o.as_array().ok()) {
                for (offset, width) in list.iter().enumerate().take(256) {
                    if let Some(width) = number(width) {
                        widths.insert(first.saturating_add(offset as u32), width);
                    }
                }
            }
            let descriptor = font.get(b"FontDescriptor").ok().and_then(deref).and_then(|o| o.as_dict().ok());
            // Fonts without widths (the standard 14) get an average glyph width.
            default_width = descriptor
                .and_then(|d| d.get(b"MissingWidth").ok())
                .and_then(number)
                .filter(|w| *w > 0.0)
                .unwrap_or(500.0);
        }
        Ok(Font {
            encoding,
            two_byte,
            widths,
            default_width,
        })
    }

    /// The codes of a string, one or two bytes each.
    fn codes<'s>(&self, bytes: &'s [u8]) -> impl Iterator<Item = u32> + 's {
        let step = if self.two_byte { 2 } else { 1 };
        bytes
            .chunks(step)
            .map(|chunk| chunk.iter().fold(0u32, |code, &b| (code << 8) | u32::from(b)))
    }

    fn width(&self, code: u32) -> f64 {
        self.widths.get(&code).copied().unwrap_or(self.default_width) / 1000.0
    }
}

/// The parts of the graphics state that `q` and `Q` save and restore.
#[derive(Clone)]
struct GraphicsState<'d> {
    ctm: Matrix,
    font: Option<Rc<Font<'d>>>,
    font_size: f64,
    char_spacing: f64,
    word_spacing: f64,
    horizontal_scale: f64,
    leading: f64,
    rise: f64,
}

/// The fonts and XObjects a content stream can name, with the fonts loaded so far.
struct Resources<'d> {
    dictionaries: Vec<&'d Dictionary>,
    fonts: HashMap<Vec<u8>, Option<Rc<Font<'d>>>>,
}

impl<'d> Resources<'d> {
    fn new(dictionaries: Vec<&'d Dictionary>) -> Self {
        Resources {
            dictionaries,
            fonts: HashMap::new(),
        }
    }

    /// Looks `name` up in the `category` (`/Font`, `/XObject`) of each resources
    /// dictionary in turn.
    fn lookup(&self, document: &'d Document, category: &[u8], name: &[u8]) -> Option<&'d Object> {
        self.dictionaries.iter().find_map(|resources| {
            let (_, entries) = document.dereference(resources.get(category).ok()?).ok()?;
            let (_, object) = document.dereference(entries.as_dict().ok()?.get(name).ok()?).ok()?;
            Some(object)
        })
    }

    fn font(&mut self, document: &'d Document, name: &[u8], limit: usize) -> Result<Option<Rc<Font<'d>>>, ParseError> {
        if let Some(font) = self.fonts.get(name) {
            return Ok(font.clone());
        }
        let font = match self.lookup(document, b"Font", name).and_then(|o| o.as_dict().ok()) {
            Some(dictionary) => Some(Rc::new(Font::load(document, dictionary, limit)?)),
            None => None,
        };
        self.fonts.insert(name.to_vec(), font.clone());
        Ok(font)
    }
}

/// Lays the strings a page draws out as paragraphs.
struct Layout {
    paragraphs: Vec<String>,
    current: String,
    /// Where the last string ended (device space) and the font size it had there.
    pen: Option<(f64, f64, f64)>,
    /// The distance between the first two lines of the current paragraph; a
    /// clearly wider one starts a new paragraph.
    line_gap: Option<f64>,
}

impl Layout {
    fn new() -> Self {
        Layout {
            paragraphs: Vec::new(),
            current: String::new(),
            pen: None,
            line_gap: None,
        }
    }

    /// Separates a string drawn at `(x, y)` with font size `size` from what came
    /// before, by a space, a line break or a paragraph break.
    fn move_to(&mut self, x: f64, y: f64, size: f64) {
        let Some((last_x, last_y, last_size)) = self.pen else {
            return;
        };
        let size = size.max(last_size).max(0.1);
        let dy = y - last_y;
        if dy.abs() > 0.5 * size {
            let wider_than_lines = self.line_gap.is_some_and(|gap| -dy > 1.25 * gap + 0.1);
            if dy > 0.0 || -dy > 1.6 * size || wider_than_lines {
                self.end_paragraph();
            } else {
                self.current.push('\n');
                self.line_gap.get_or_insert(-dy);
            }
        } else if (x - last_x).abs() > 0.15 * size && !self.current.ends_with(char::is_whitespace) {
            self.current.push(' ');
        }
    }

    fn push(&mut self, text: &str) {
        for ch in text.chars() {
            match ch {
                // Ligatures are spelled out so the words can be found.
                '\u{fb00}' => self.current.push_str("ff"),
                '\u{fb01}' => self.current.push_str("fi"),
                '\u{fb02}' => self.current.push_str("fl"),
                '\u{fb03}' => self.current.push_str("ffi"),
                '\u{fb04}' => self.current.push_str("ffl"),
                '\u{fb05}' | '\u{fb06}' => self.current.push_str("st"),
                '\u{ad}' => {}
                ch if ch.is_control() && !ch.is_whitespace() => {}
                ch => self.current.push(ch),
            }
        }
    }

    /// Joins the lines of the paragraph: a line ending in a hyphen runs on
    /// into the next one, other lines are separated by a space.
    fn end_paragraph(&mut self) {
        let mut paragraph = String::new();
        for line in self.current.lines() {
            let line = normalize_whitespace(line);
            if line.is_empty() {
                continue;
            }
            if !paragraph.is_empty() && !paragraph.ends_with('-') {
                paragraph.push(' ');
            }
            paragraph.push_str(&line);
        }
        self.current.clear();
        self.line_gap = None;
        if !paragraph.is_empty() {
            self.paragraphs.push(paragraph);
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.end_paragraph();
        self.paragraphs
    }
}

/// The walk through one page's content and the forms it draws.
struct PageWalk<'d, 'b, 'l> {
    document: &'d Document,
    budget: &'b Budget<'l>,
    limit: usize,
    layout: Layout,
    forms_drawn: usize,
    operators: usize,
}

fn page_text(document: &Document, page_id: ObjectId, budget: &Budget<'_>) -> Result<Vec<String>, ParseError> {
    let limit = budget.limits().max_pdf_stream_bytes;
    let content = document
        .get_page_content_with_limit(page_id, limit)
        .map_err(|e| pdf_error(e, limit))?;
    let (inline, referenced) = document.get_page_resources(page_id).map_err(|e| pdf_error(e, limit))?;
    let mut dictionaries: Vec<&Dictionary> = inline.into_iter().collect();
    dictionaries.extend(referenced.into_iter().filter_map(|id| document.get_dictionary(id).ok()));
    let mut walk = PageWalk {
        document,
        budget,
        limit,
        layout: Layout::new(),
        forms_drawn: 0,
        operators: 0,
    };
    let state = GraphicsState {
        ctm: IDENTITY,
        font: None,
        font_size: 0.0,
        char_spacing: 0.0,
        word_spacing: 0.0,
        horizontal_scale: 1.0,
        leading: 0.0,
        rise: 0.0,
    };
    walk.run(&content, &mut Resources::new(dictionaries), state, 0)?;
    Ok(walk.layout.finish())
}

impl<'d> PageWalk<'d, '_, '_> {
    /// Runs one content stream. Operators that fail to parse end the stream,
    /// keeping the text read up to them.
    fn run(&mut self, content: &[u8], resources: &mut Resources<'d>, state: GraphicsState<'d>, depth: usize) -> Result<(), ParseError> {
        let mut state = state;
        let mut saved: Vec<GraphicsState<'d>> = Vec::new();
        let mut text_matrix = IDENTITY;
        let mut line_matrix = IDENTITY;
        for operation in Content::decode_iter(content) {
            let Ok(operation) = operation else { break };
            self.operators += 1;
            if self.operators.is_multiple_of(OPERATORS_PER_TIME_CHECK) {
                self.budget.check_time()?;
            }
            let operands = &operation.operands;
            let number = |index: usize| operands.get(index).and_then(|o| o.as_float().ok()).map(f64::from).unwrap_or(0.0);
            let matrix = || [number(0), number(1), number(2), number(3), number(4), number(5)];
            match operation.operator.as_str() {
                "q" if saved.len() < MAX_GRAPHICS_STACK => saved.push(state.clone()),
                "Q" => {
                    if let Some(previous) = saved.pop() {
                        state = previous;
                    }
                }
                "cm" => state.ctm = multiply(&matrix(), &state.ctm),
                "BT" => {
                    text_matrix = IDENTITY;
                    line_matrix = IDENTITY;
                }
                "Tf" => {
                    state.font_size = number(1);
                    state.font = match operands.first().and_then(|o| o.as_name().ok()) {
                        Some(name) => resources.font(self.document, name, self.limit)?,
                        None => None,
                    };
                }
                "Tc" => state.char_spacing = number(0),
                "Tw" => state.word_spacing = number(0),
                "Tz" => state.horizontal_scale = number(0) / 100.0,
                "TL" => state.leading = number(0),
                "Ts" => state.rise = number(0),
                "Td" | "TD" => {
                    if operation.operator == "TD" {
                        state.leading = -number(1);
                    }
                    line_matrix = multiply(&translation(number(0), number(1)), &line_matrix);
                    text_matrix = line_matrix;
                }
                "Tm" => {
                    line_matrix = matrix();
                    text_matrix = line_matrix;
                }
                "T*" => {
                    line_matrix = multiply(&translation(0.0, -state.leading), &line_matrix);
                    text_matrix = line_matrix;
                }
                "Tj" | "'" | "\"" | "TJ" => {
                    if operation.operator != "Tj" && operation.operator != "TJ" {
                        if operation.operator == "\"" {
                            state.word_spacing = number(0);
                            state.char_spacing = number(1);
                        }
                        line_matrix = multiply(&translation(0.0, -state.leading), &line_matrix);
                        text_matrix = line_matrix;
                    }
                    let shown = match operation.operator.as_str() {
                        "\"" => operands.get(2),
                        _ => operands.first(),
                    };
                    match shown {
                        Some(Object::Array(items)) => {
                            for item in items {
                                match item {
                                    Object::String(bytes, _) => self.show(bytes, &state, &mut text_matrix),
                                    other => {
                                        let adjustment = other.as_float().map(f64::from).unwrap_or(0.0);
                                        let shift = -adjustment / 1000.0 * state.font_size * state.horizontal_scale;
                                        text_matrix = multiply(&translation(shift, 0.0), &text_matrix);
                                    }
                                }
                            }
                        }
                        Some(Object::String(bytes, _)) => self.show(bytes, &state, &mut text_matrix),
                        _ => {}
                    }
                }
                "Do" => {
                    if let Some(name) = operands.first().and_then(|o| o.as_name().ok()) {
                        self.draw_form(name, resources, &state, depth)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Draws a string at the text matrix and moves the matrix past it.
    fn show(&mut self, bytes: &[u8], state: &GraphicsState<'d>, text_matrix: &mut Matrix) {
        let Some(font) = state.font.as_ref() else { return };
        let rendering = multiply(&multiply(&[1.0, 0.0, 0.0, 1.0, 0.0, state.rise], text_matrix), &state.ctm);
        let size = state.font_size.abs() * rendering[2].hypot(rendering[3]);
        self.layout.move_to(rendering[4], rendering[5], size);
        if let Some(encoding) = font.encoding.as_ref() {
            if state.char_spacing > 0.15 * state.font_size.abs() {
                // Character spacing this wide spreads the glyphs apart: some
                // producers (Ghostscript) set the gap between two words this way
                // inside one string, so each glyph stands apart.
                let step = if font.two_byte { 2 } else { 1 };
                for (index, code) in bytes.chunks(step).enumerate() {
                    if index > 0 && !self.layout.current.ends_with(char::is_whitespace) {
                        self.layout.current.push(' ');
                    }
                    if let Ok(text) = encoding.bytes_to_string(code) {
                        self.layout.push(&text);
                    }
                }
            } else if let Ok(text) = encoding.bytes_to_string(bytes) {
                self.layout.push(&text);
            }
        }
        let mut advance = 0.0;
        // The spacing after the last glyph moves the pen but draws nothing, so
        // the gap to the next string is measured from where the ink ends.
        let mut trailing = 0.0;
        for code in font.codes(bytes) {
            trailing = state.char_spacing;
            if !font.two_byte && code == 32 {
                trailing += state.word_spacing;
            }
            advance += font.width(code) * state.font_size + trailing;
        }
        let ink = multiply(&translation((advance - trailing) * state.horizontal_scale, 0.0), text_matrix);
        let end = multiply(&multiply(&[1.0, 0.0, 0.0, 1.0, 0.0, state.rise], &ink), &state.ctm);
        self.layout.pen = Some((end[4], end[5], size));
        *text_matrix = multiply(&translation(advance * state.horizontal_scale, 0.0), text_matrix);
    }

    /// Runs the content of a form XObject, bounded in depth and count.
    fn draw_form(&mut self, name: &[u8], resources: &Resources<'d>, state: &GraphicsState<'d>, depth: usize) -> Result<(), ParseError> {
        if depth >= MAX_FORM_DEPTH || self.forms_drawn >= MAX_FORMS_PER_PAGE {
            return Ok(());
        }
        let Some(stream) = resources.lookup(self.document, b"XObject", name).and_then(|o| o.as_stream().ok()) else {
            return Ok(());
        };
        if !stream.dict.get(b"Subtype").and_then(Object::as_name).is_ok_and(|s| s == b"Form") {
            return Ok(());
        }
        self.forms_drawn += 1;
        let content = match stream.decompressed_content_with_limit(self.limit) {
            Ok(content) => content,
            Err(lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. })) => return Err(stream_limit(self.limit)),
            Err(_) => return Ok(()),
        };
        let mut inner = state.clone();
        if let Ok(matrix) = stream.dict.get(b"Matrix").and_then(Object::as_array) {
            let values: Vec<f64> = matrix.iter().filter_map(|o| o.as_float().ok()).map(f64::from).collect();
            if let [a, b, c, d, e, f] = values[..] {
                inner.ctm = multiply(&[a, b, c, d, e, f], &inner.ctm);
            }
        }
        // A form without resources of its own uses those of the page.
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|o| self.document.dereference(o).ok())
            .and_then(|(_, o)| o.as_dict().ok());
        let mut form_resources = Resources::new(match own {
            Some(dictionary) => vec![dictionary],
            None => resources.dictionaries.clone(),
        });
        self.run(&content, &mut form_resources, inner, depth + 1)
    }
}

#[cfg(test)]
mod tests {
    use lopdf::content::Operation;
    use lopdf::{Bookmark, Stream, StringFormat, dictionary};

    use super::*;
    use crate::pipeline::parse::Limits;

    /// The operators that draw `lines` (x, y, text) in 12-point Helvetica.
    fn text_operations(lines: &[(i64, i64, &str)]) -> Vec<Operation> {
        let mut operations = vec![Operation::new("BT", vec![]), Operation::new("Tf", vec!["F1".into(), 12.into()])];
        for (x, y, text) in lines {
            operations.push(Operation::new(
                "Tm",
                vec![1.into(), 0.into(), 0.into(), 1.into(), (*x).into(), (*y).into()],
            ));
            operations.push(Operation::new("Tj", vec![Object::string_literal(*text)]));
        }
        operations.push(Operation::new("ET", vec![]));
        operations
    }

    /// A PDF whose pages draw the given operators, with an optional title and
    /// one bookmark per (title, level, page index).
    fn pdf(pages: Vec<Vec<Operation>>, title: Option<&str>, bookmarks: &[(&str, Option<u32>, usize)], compress: bool) -> Vec<u8> {
        let mut document = Document::with_version("1.5");
        let pages_id = document.new_object_id();
        let font_id = document.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => "Helvetica",
            "Encoding" => "WinAnsiEncoding",
        });
        let resources_id = document.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
        let mut kids = Vec::new();
        for operations in pages {
            let content = Content { operations }.encode().unwrap();
            let content_id = document.add_object(Stream::new(dictionary! {}, content));
            kids.push(document.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id }));
        }
        document.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => kids.iter().map(|id| Object::from(*id)).collect::<Vec<_>>(),
                "Count" => kids.len() as i64,
                "Resources" => resources_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog_id = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        document.trailer.set("Root", catalog_id);
        if let Some(title) = title {
            let info_id = document.add_object(dictionary! { "Title" => Object::String(title.as_bytes().to_vec(), StringFormat::Literal) });
            document.trailer.set("Info", info_id);
        }
        for (title, parent, page) in bookmarks {
            document.add_bookmark(Bookmark::new((*title).to_owned(), [0.0; 3], 0, kids[*page]), *parent);
        }
        if let Some(outline_id) = document.build_outline() {
            document.get_dictionary_mut(catalog_id).unwrap().set("Outlines", outline_id);
        }
        if compress {
            document.compress();
        }
        let mut bytes = Vec::new();
        document.save_to(&mut bytes).unwrap();
        bytes
    }

    fn run(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        parse(bytes, &mut Budget::new(&Limits::default()))
    }

    #[test]
    fn pages_paragraphs_title_and_outline() {
        let page_one = text_operations(&[
            (72, 760, "Introduction"),
            (72, 730, "The first paragraph starts here"),
            (72, 716, "and continues on a second line."),
            (72, 680, "A second para-"),
            (72, 666, "graph follows."),
        ]);
        let page_two = text_operations(&[
            (72, 760, "Some text before the heading."),
            (72, 720, "Details"),
            (72, 690, "Text under details."),
        ]);
        let bytes = pdf(
            vec![page_one, page_two],
            Some("A  Test Document"),
            &[("Introduction", None, 0), ("Details", None, 1)],
            true,
        );
        let parsed = run(&bytes).unwrap();
        assert_eq!(parsed.title.as_deref(), Some("A Test Document"));
        assert_eq!(parsed.pages, Some(2));
        let blocks: Vec<(Option<u32>, Vec<&str>, &str)> = parsed
            .blocks
            .iter()
            .map(|b| (b.page, b.section_path.iter().map(String::as_str).collect(), b.text.as_str()))
            .collect();
        assert_eq!(
            blocks,
            [
                (Some(1), vec!["Introduction"], "Introduction"),
                (
                    Some(1),
                    vec!["Introduction"],
                    "The first paragraph starts here and continues on a second line."
                ),
                (Some(1), vec!["Introduction"], "A second para-graph follows."),
                (Some(2), vec!["Introduction"], "Some text before the heading."),
                (Some(2), vec!["Details"], "Details"),
                (Some(2), vec!["Details"], "Text under details."),
            ]
        );
    }

    #[test]
    fn words_are_separated_by_where_they_are_drawn() {
        // Ghostscript-style output: each word placed on its own, with kerning
        // gaps in TJ arrays; and a word split in two strings that touch.
        let operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 10.into()]),
            Operation::new("Td", vec![72.into(), 700.into()]),
            Operation::new("Tj", vec![Object::string_literal("General")]),
            Operation::new("Td", vec![45.into(), 0.into()]),
            Operation::new("Tj", vec![Object::string_literal("Commands")]),
            Operation::new(
                "TJ",
                vec![Object::Array(vec![
                    (-300).into(),
                    Object::string_literal("Man"),
                    (-20).into(),
                    Object::string_literal("ual"),
                    (-600).into(),
                    Object::string_literal("BASH(1)"),
                ])],
            ),
            Operation::new("ET", vec![]),
        ];
        let parsed = run(&pdf(vec![operations], None, &[], false)).unwrap();
        assert_eq!(parsed.blocks.len(), 1);
        assert_eq!(parsed.blocks[0].text, "General Commands Manual BASH(1)");
        assert_eq!(parsed.title, None);
    }

    #[test]
    fn a_runaway_stream_is_refused() {
        let mut operations = text_operations(&[(72, 700, "visible")]);
        // A comment-free no-op repeated: about 2 MiB once inflated, a few KiB deflated.
        operations.extend(
            (0..200_000)
                .map(|_| Operation::new("q", vec![]))
                .chain((0..200_000).map(|_| Operation::new("Q", vec![]))),
        );
        let bytes = pdf(vec![operations], None, &[], true);
        assert!(bytes.len() < 100_000, "the test PDF should be small, is {}", bytes.len());
        let limits = Limits {
            max_pdf_stream_bytes: 256 << 10,
            ..Limits::default()
        };
        let error = parse(&bytes, &mut Budget::new(&limits)).unwrap_err();
        assert!(
            matches!(&error, ParseError::LimitExceeded(detail) if detail.contains("inflates")),
            "{error}"
        );
        // The same file is fine under the default limit.
        assert_eq!(run(&bytes).unwrap().blocks[0].text, "visible");
    }

    #[test]
    fn a_runaway_object_stream_is_refused_while_loading() {
        let mut document = Document::load_mem(&pdf(vec![text_operations(&[(72, 700, "visible")])], None, &[], false)).unwrap();
        // A 2 MiB string in an object that the writer packs into an object
        // stream, which lopdf inflates while loading.
        let filler = document.add_object(Object::String(vec![b'a'; 2 << 20], StringFormat::Literal));
        document.trailer.set("Filler", filler);
        let mut bytes = Vec::new();
        document.save_modern(&mut bytes).unwrap();
        assert!(bytes.len() < 100_000, "the test PDF should be small, is {}", bytes.len());
        let limits = Limits {
            max_pdf_stream_bytes: 256 << 10,
            ..Limits::default()
        };
        let error = parse(&bytes, &mut Budget::new(&limits)).unwrap_err();
        assert_eq!(error.code(), "LIMIT_EXCEEDED", "{error}");
        assert_eq!(run(&bytes).unwrap().blocks[0].text, "visible");
    }

    #[test]
    fn a_file_that_needs_a_password_is_encrypted() {
        let mut document = Document::load_mem(&pdf(vec![text_operations(&[(72, 700, "secret")])], None, &[], false)).unwrap();
        // A standard security handler whose user password is not empty: the
        // check values match no password.
        let encrypt_id = document.add_object(dictionary! {
            "Filter" => "Standard",
            "V" => 1,
            "R" => 2,
            "Length" => 40,
            "P" => -44,
            "O" => Object::String(vec![0x11; 32], StringFormat::Hexadecimal),
            "U" => Object::String(vec![0x22; 32], StringFormat::Hexadecimal),
        });
        document.trailer.set("Encrypt", encrypt_id);
        document.trailer.set(
            "ID",
            vec![
                Object::String(vec![1; 16], StringFormat::Hexadecimal),
                Object::String(vec![1; 16], StringFormat::Hexadecimal),
            ],
        );
        let mut bytes = Vec::new();
        document.save_to(&mut bytes).unwrap();
        assert_eq!(run(&bytes).unwrap_err(), ParseError::Encrypted { format: "pdf" });
    }

    #[test]
    fn garbage_and_broken_files_are_corrupt() {
        assert_eq!(run(b"this is not a PDF at all").unwrap_err().code(), "CORRUPT_FILE");
        assert_eq!(
            run(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\ngarbage that is not a PDF body\n%%EOF")
                .unwrap_err()
                .code(),
            "CORRUPT_FILE"
        );
        let garbage: Vec<u8> = b"%PDF-1.4\n"
            .iter()
            .copied()
            .chain((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8))
            .collect();
        assert_eq!(run(&garbage).unwrap_err().code(), "CORRUPT_FILE");
    }

    #[test]
    fn the_text_budget_is_enforced() {
        let lines: Vec<(i64, i64, String)> = (0..20).map(|i| (72, 800 - 30 * i, format!("paragraph number {i}"))).collect();
        let lines: Vec<(i64, i64, &str)> = lines.iter().map(|(x, y, t)| (*x, *y, t.as_str())).collect();
        let bytes = pdf(vec![text_operations(&lines)], None, &[], false);
        let limits = Limits {
            max_text_bytes: 100,
            ..Limits::default()
        };
        assert_eq!(parse(&bytes, &mut Budget::new(&limits)).unwrap_err().code(), "LIMIT_EXCEEDED");
        assert_eq!(run(&bytes).unwrap().blocks.len(), 20);
    }
}

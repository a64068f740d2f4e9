//! The walk through a page's content operators and the forms it draws,
//! bounded in time, form depth and count, and graphics-state nesting.

use std::rc::Rc;

use lopdf::content::Content;
use lopdf::{DecompressError, Dictionary, Document, Object, ObjectId};

use super::errors::{pdf_error, stream_limit};
use super::fonts::{Font, Resources};
use super::layout::Layout;
use super::matrix::{IDENTITY, Matrix, multiply, translation};
use crate::parse::{Budget, ParseError};

/// How many content operators pass between two checks of the time budget.
const OPERATORS_PER_TIME_CHECK: usize = 1024;
/// How deep form XObjects may nest, and how many may be drawn on one page, so a
/// form that draws itself or a fan of forms cannot loop or explode.
const MAX_FORM_DEPTH: usize = 8;
const MAX_FORMS_PER_PAGE: usize = 512;
/// How deep `q` may nest; deeper saves are ignored.
const MAX_GRAPHICS_STACK: usize = 256;

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

/// The walk through one page's content and the forms it draws.
struct PageWalk<'d, 'b, 'l> {
    document: &'d Document,
    budget: &'b Budget<'l>,
    limit: usize,
    layout: Layout,
    forms_drawn: usize,
    operators: usize,
}

pub(super) fn page_text(document: &Document, page_id: ObjectId, budget: &Budget<'_>) -> Result<Vec<String>, ParseError> {
    let limit = budget.limits().max_pdf_stream_bytes;
    let content = document
        .get_page_content_with_limit(page_id, limit)
        .map_err(|e| pdf_error(e, limit))?;
    budget.take_inflated(content.len())?;
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
        self.budget.take_inflated(content.len())?;
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

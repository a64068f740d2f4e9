//! Where strings are drawn, turned into lines and paragraphs.

use crate::parse::normalize_whitespace;

/// Lays the strings a page draws out as paragraphs.
pub(super) struct Layout {
    paragraphs: Vec<String>,
    pub(super) current: String,
    /// Where the last string ended (device space) and the font size it had there.
    pub(super) pen: Option<(f64, f64, f64)>,
    /// The distance between the first two lines of the current paragraph; a
    /// clearly wider one starts a new paragraph.
    line_gap: Option<f64>,
}

impl Layout {
    pub(super) fn new() -> Self {
        Layout {
            paragraphs: Vec::new(),
            current: String::new(),
            pen: None,
            line_gap: None,
        }
    }

    /// Separates a string drawn at `(x, y)` with font size `size` from what came
    /// before, by a space, a line break or a paragraph break.
    pub(super) fn move_to(&mut self, x: f64, y: f64, size: f64) {
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

    pub(super) fn push(&mut self, text: &str) {
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

    pub(super) fn finish(mut self) -> Vec<String> {
        self.end_paragraph();
        self.paragraphs
    }
}

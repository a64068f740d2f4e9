//! Fonts (how a string's codes become text and how far each moves the pen)
//! and the resources a content stream names them by.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::{DecompressError, Dictionary, Document, Encoding, Object};

use super::errors::stream_limit;
use crate::parse::ParseError;

/// What this module needs of a font: how to turn its codes into text, and how
/// far each code moves the pen.
pub(super) struct Font<'d> {
    pub(super) encoding: Option<Encoding<'d>>,
    /// Codes are two bytes (composite fonts) rather than one.
    pub(super) two_byte: bool,
    /// Glyph widths in thousandths of the font size, by code.
    widths: HashMap<u32, f64>,
    default_width: f64,
}

impl<'d> Font<'d> {
    pub(super) fn load(document: &'d Document, font: &'d Dictionary, limit: usize) -> Result<Self, ParseError> {
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
    pub(super) fn codes<'s>(&self, bytes: &'s [u8]) -> impl Iterator<Item = u32> + 's {
        let step = if self.two_byte { 2 } else { 1 };
        bytes
            .chunks(step)
            .map(|chunk| chunk.iter().fold(0u32, |code, &b| (code << 8) | u32::from(b)))
    }

    pub(super) fn width(&self, code: u32) -> f64 {
        self.widths.get(&code).copied().unwrap_or(self.default_width) / 1000.0
    }
}

/// The fonts and XObjects a content stream can name, with the fonts loaded so far.
pub(super) struct Resources<'d> {
    pub(super) dictionaries: Vec<&'d Dictionary>,
    fonts: HashMap<Vec<u8>, Option<Rc<Font<'d>>>>,
}

impl<'d> Resources<'d> {
    pub(super) fn new(dictionaries: Vec<&'d Dictionary>) -> Self {
        Resources {
            dictionaries,
            fonts: HashMap::new(),
        }
    }

    /// Looks `name` up in the `category` (`/Font`, `/XObject`) of each resources
    /// dictionary in turn.
    pub(super) fn lookup(&self, document: &'d Document, category: &[u8], name: &[u8]) -> Option<&'d Object> {
        self.dictionaries.iter().find_map(|resources| {
            let (_, entries) = document.dereference(resources.get(category).ok()?).ok()?;
            let (_, object) = document.dereference(entries.as_dict().ok()?.get(name).ok()?).ok()?;
            Some(object)
        })
    }

    pub(super) fn font(&mut self, document: &'d Document, name: &[u8], limit: usize) -> Result<Option<Rc<Font<'d>>>, ParseError> {
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

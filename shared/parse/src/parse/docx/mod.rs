//! DOCX (Office Open XML word-processing documents): the paragraphs of
//! `word/document.xml` become blocks, paragraphs in a heading style build the
//! section path (by the rules of [`BlockBuilder`]), and each `w:tbl` is a
//! table whose rows (`w:tr`) become blocks of their cells (`w:tc`, the
//! paragraphs of a cell joined by spaces). A table's first row is its header
//! row: Word's repeated header rows (`w:tblHeader`) are always a table's first
//! rows, and a table without any still gets its first row as the header, as a
//! Markdown table must. A table nested in a cell flows into that cell's text.
//! Merged cells are not expanded: a cell spanning columns (`w:gridSpan`) is
//! one cell, and a cell merged into the one above (`w:vMerge`) is an empty
//! one. The title comes from `docProps/core.xml` (`dc:title`).
//!
//! Heading styles are recognised by the style's name in `word/styles.xml`
//! ("heading 1".."heading 9", "Title"), by the outline level a style or a
//! paragraph declares, and, when `styles.xml` says nothing, by the style id
//! itself (`Heading1`.."Heading9", `Title`). The "Title" style ranks above
//! "heading 1".
//!
//! A DOCX is a zip archive, read through [`Archive`] with its limits on
//! entries, compression ratio and inflated size; its XML parts are read
//! through [`Part`], which refuses any document type declaration, so no entity
//! is ever expanded.
//!
//! Office saves a password-protected document as an OLE compound file holding an
//! `EncryptedPackage` stream rather than as a zip; such a file is reported as
//! encrypted.

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};

use super::blocks::BlockBuilder;
use super::xml::{self, Part, attribute, push_text};
use super::zip::{Archive, is_ole, ole_error};
use super::{Block, Budget, ParseError, ParsedDocument, normalize_whitespace};

const FORMAT: &str = "docx";
/// WordprocessingML, transitional and strict.
const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const W_STRICT: &str = "http://purl.oclc.org/ooxml/wordprocessingml/main";
/// Markup compatibility: `mc:Fallback` repeats the content of `mc:Choice`.
const MC: &str = "http://schemas.openxmlformats.org/markup-compatibility/2006";
/// The level given to the "Title" style, above "heading 1".
const TITLE_LEVEL: u8 = 0;

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    if is_ole(bytes) {
        return Err(ole_error(bytes, FORMAT));
    }
    let mut archive = Archive::open(bytes, FORMAT, budget)?;
    let document = archive.require("word/document.xml", budget)?;
    let styles = match archive.read("word/styles.xml", budget)? {
        Some(xml) => heading_styles(&xml, budget)?,
        None => HashMap::new(),
    };
    let title = match archive.read("docProps/core.xml", budget)? {
        Some(core) => xml::dc_title(&core, "docProps/core.xml", FORMAT, budget)?,
        None => None,
    };
    let blocks = body(&document, &styles, budget)?;
    Ok(ParsedDocument {
        title,
        pages: None,
        blocks,
        ..ParsedDocument::default()
    })
}

/// The namespaces this parser tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    W,
    Mc,
    Other,
}

impl Ns {
    fn of(namespace: &str) -> Ns {
        if namespace == W || namespace == W_STRICT {
            Ns::W
        } else if namespace == MC {
            Ns::Mc
        } else {
            Ns::Other
        }
    }
}

/// The value of an element's `val` attribute (`w:val`).
fn val(element: &BytesStart<'_>) -> Option<String> {
    attribute(element, "val")
}

/// Parses an outline level (`0` is the top, `9` means body text) into a heading
/// level.
fn outline_level(value: &str) -> Option<u8> {
    value.trim().parse::<u8>().ok().filter(|level| *level < 9).map(|level| level + 1)
}

/// The heading level a style name stands for: "heading 1".."heading 9" (any
/// case) or "Title".
fn level_of_name(name: &str) -> Option<u8> {
    let name = name.trim().to_ascii_lowercase();
    if name == "title" {
        return Some(TITLE_LEVEL);
    }
    name.strip_prefix("heading")
        .and_then(|n| n.trim().parse::<u8>().ok())
        .filter(|n| (1..=9).contains(n))
}

/// Maps the paragraph style ids of `styles.xml` that are headings to their
/// levels.
fn heading_styles(xml: &[u8], budget: &Budget<'_>) -> Result<HashMap<String, u8>, ParseError> {
    let mut part = Part::new(xml, "word/styles.xml", FORMAT);
    let mut levels = HashMap::new();
    // The style being read: its id, and the level its name or outline gives.
    let mut style: Option<(String, Option<u8>)> = None;
    loop {
        let (namespace, event) = part.next(budget)?;
        let namespace = Ns::of(namespace);
        match &event {
            Event::Start(element) | Event::Empty(element) if namespace == Ns::W => match element.local_name().as_ref() {
                "style" => {
                    let paragraph = element
                        .attributes()
                        .flatten()
                        .any(|a| a.key.local_name().as_ref() == "type" && a.value == "paragraph");
                    let id = attribute(element, "styleId");
                    style = match (paragraph, id, matches!(event, Event::Start(_))) {
                        (true, Some(id), true) => Some((id, None)),
                        _ => None,
                    };
                }
                "name" => {
                    if let (Some((_, level)), Some(name)) = (style.as_mut(), val(element)) {
                        *level = level_of_name(&name).or(*level);
                    }
                }
                "outlineLvl" => {
                    if let (Some((_, level @ None)), Some(value)) = (style.as_mut(), val(element)) {
                        *level = outline_level(&value);
                    }
                }
                _ => {}
            },
            Event::End(element) if namespace == Ns::W && element.local_name().as_ref() == "style" => {
                if let Some((id, Some(level))) = style.take() {
                    levels.insert(id, level);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(levels)
}

/// The state of the walk through `document.xml`.
struct Body<'s, 'b, 'l> {
    styles: &'s HashMap<String, u8>,
    builder: BlockBuilder<'b, 'l>,
    /// The paragraph being read: its text and its heading level, if any.
    paragraph: Option<(String, Option<u8>)>,
    /// Inside `w:t`, whose text is the document's.
    in_text: bool,
    /// Nesting of `w:pPrChange` (the properties before a tracked change, whose
    /// style must not count) and of `mc:Fallback` (a copy of `mc:Choice`).
    ignored_depth: usize,
}

fn body(xml: &[u8], styles: &HashMap<String, u8>, budget: &mut Budget<'_>) -> Result<Vec<Block>, ParseError> {
    let mut part = Part::new(xml, "word/document.xml", FORMAT);
    let mut state = Body {
        styles,
        builder: BlockBuilder::new(budget),
        paragraph: None,
        in_text: false,
        ignored_depth: 0,
    };
    loop {
        let (namespace, event) = part.next(state.builder.budget())?;
        let namespace = Ns::of(namespace);
        match &event {
            Event::Eof => break,
            Event::Start(element) => state.start(namespace, element, false)?,
            Event::Empty(element) => {
                state.start(namespace, element, true)?;
                state.end(namespace, element.local_name().as_ref())?;
            }
            Event::End(element) => state.end(namespace, element.local_name().as_ref())?,
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) if state.in_text && state.ignored_depth == 0 => {
                if let Some((text, _)) = state.paragraph.as_mut() {
                    push_text(text, &event);
                    state.builder.budget().check_gathered(text.len())?;
                }
            }
            _ => {}
        }
    }
    state.builder.finish()
}

impl Body<'_, '_, '_> {
    fn start(&mut self, namespace: Ns, element: &BytesStart<'_>, empty: bool) -> Result<(), ParseError> {
        let name = element.local_name();
        if namespace == Ns::Mc && name.as_ref() == "Fallback" && !empty {
            self.ignored_depth += 1;
        }
        if namespace != Ns::W {
            return Ok(());
        }
        match name.as_ref() {
            "pPrChange" if !empty => self.ignored_depth += 1,
            _ if self.ignored_depth > 0 => {}
            "p" => self.paragraph = Some((String::new(), None)),
            "pStyle" => {
                if let (Some((_, level)), Some(id)) = (self.paragraph.as_mut(), val(element)) {
                    *level = self.styles.get(&id).copied().or_else(|| level_of_name(&id));
                }
            }
            "outlineLvl" => {
                if let (Some((_, level)), Some(value)) = (self.paragraph.as_mut(), val(element)) {
                    *level = outline_level(&value);
                }
            }
            "t" => self.in_text = !empty,
            "tab" | "br" | "cr" => self.push(" "),
            "noBreakHyphen" => self.push("-"),
            // The builder keeps nested tables in the outer cell.
            "tbl" => self.builder.start_table()?,
            "tr" => self.builder.start_row()?,
            "tc" => self.builder.start_cell(),
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, namespace: Ns, name: &str) -> Result<(), ParseError> {
        if namespace == Ns::Mc && name == "Fallback" {
            self.ignored_depth = self.ignored_depth.saturating_sub(1);
        }
        if namespace != Ns::W {
            return Ok(());
        }
        match name {
            "pPrChange" => self.ignored_depth = self.ignored_depth.saturating_sub(1),
            _ if self.ignored_depth > 0 => {}
            "t" => self.in_text = false,
            "p" => self.end_paragraph()?,
            "tc" => self.builder.end_cell(),
            "tr" => self.builder.end_row()?,
            "tbl" => self.builder.end_table()?,
            _ => {}
        }
        Ok(())
    }

    fn push(&mut self, text: &str) {
        if let Some((paragraph, _)) = self.paragraph.as_mut() {
            paragraph.push_str(text);
        }
    }

    fn end_paragraph(&mut self) -> Result<(), ParseError> {
        let Some((text, level)) = self.paragraph.take() else {
            return Ok(());
        };
        let text = normalize_whitespace(&text);
        if self.builder.paragraph_in_cell(&text) {
            return Ok(());
        }
        match level {
            Some(level) => self.builder.heading(level.into(), &text),
            None => self.builder.paragraph(&text),
        }
    }
}

#[cfg(test)]
mod tests;

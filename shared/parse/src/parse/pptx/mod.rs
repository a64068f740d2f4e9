//! PPTX (Office Open XML presentations): a section per slide, in the order
//! `ppt/presentation.xml` lists them. Each slide's section is titled by the
//! text of its title placeholder (`ph type="title"` or `"ctrTitle"`), or
//! "Slide N" when it has none, and its blocks carry the slide's number as
//! their page. The other shapes' paragraphs follow in the slide's shape-tree
//! order, the order PowerPoint's reading-order pane and screen readers use;
//! tables (`a:tbl`) come through as tables, a merged-over cell kept empty so
//! columns line up. The speaker notes (the body placeholder of the slide's
//! notes page) follow under a "Speaker notes" heading below the slide's, so
//! their section path says what they are. A hidden slide (`show="0"`) is
//! read like the others: its text is the deck's, and its number is the one
//! PowerPoint shows. The title comes from `docProps/core.xml`.
//!
//! A PPTX is a zip archive, read through [`Archive`] with the same limits as
//! DOCX, and its XML through [`Part`], which refuses any document type
//! declaration. A password-protected PPTX is an OLE file, reported as
//! encrypted.

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};

use super::blocks::BlockBuilder;
use super::xml::{self, Part, attribute, push_text};
use super::zip::{Archive, is_ole, ole_error, resolve};
use super::{Budget, ParseError, ParsedDocument, normalize_whitespace};

const FORMAT: &str = "pptx";
/// PresentationML, transitional and strict.
const P: [&str; 2] = [
    "http://schemas.openxmlformats.org/presentationml/2006/main",
    "http://purl.oclc.org/ooxml/presentationml/main",
];
/// DrawingML, transitional and strict: the text and tables in shapes.
const A: [&str; 2] = [
    "http://schemas.openxmlformats.org/drawingml/2006/main",
    "http://purl.oclc.org/ooxml/drawingml/main",
];
/// Markup compatibility: `mc:Fallback` repeats the content of `mc:Choice`.
const MC: &str = "http://schemas.openxmlformats.org/markup-compatibility/2006";
/// The namespaces this parser tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    P,
    A,
    Mc,
    Other,
}

impl Ns {
    fn of(namespace: &str) -> Ns {
        if P.contains(&namespace) {
            Ns::P
        } else if A.contains(&namespace) {
            Ns::A
        } else if namespace == MC {
            Ns::Mc
        } else {
            Ns::Other
        }
    }
}

/// The heading under which a slide's speaker notes are kept.
pub const SPEAKER_NOTES: &str = "Speaker notes";

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    if is_ole(bytes) {
        return Err(ole_error(bytes, FORMAT));
    }
    let mut archive = Archive::open(bytes, FORMAT, budget)?;
    let presentation = archive.require("ppt/presentation.xml", budget)?;
    let order = slide_order(&presentation, budget)?;
    let slides = match archive.read("ppt/_rels/presentation.xml.rels", budget)? {
        Some(rels) => relationships("ppt/presentation.xml", &rels, budget)?,
        None => HashMap::new(),
    };
    let title = match archive.read("docProps/core.xml", budget)? {
        Some(core) => xml::dc_title(&core, "docProps/core.xml", FORMAT, budget)?,
        None => None,
    };
    let mut builder = BlockBuilder::new(budget);
    let mut number = 0u32;
    for id in order {
        let Some((_, slide_name)) = slides.get(&id) else {
            return Err(corrupt(format!("ppt/presentation.xml lists slide {id}, which has no relationship")));
        };
        let slide = archive.require(slide_name, builder.budget())?;
        let slide_relationships = match archive.read(&rels_name(slide_name), builder.budget())? {
            Some(rels) => relationships(slide_name, &rels, builder.budget())?,
            None => HashMap::new(),
        };
        let notes_name = slide_relationships
            .values()
            .find(|(kind, _)| kind.ends_with("/notesSlide"))
            .map(|(_, target)| target.clone());
        number += 1;
        let content = Content::read(&slide, slide_name, builder.budget())?;
        builder.start_page(number);
        let heading = content.title.clone().unwrap_or_else(|| format!("Slide {number}"));
        builder.heading(1, &heading)?;
        content.emit(&mut builder)?;
        if let Some(notes_name) = notes_name
            && let Some(notes) = archive.read(&notes_name, builder.budget())?
        {
            let notes = Content::read(&notes, &notes_name, builder.budget())?;
            if !notes.notes.is_empty() {
                builder.heading(2, SPEAKER_NOTES)?;
                for paragraph in &notes.notes {
                    builder.paragraph(paragraph)?;
                }
            }
        }
    }
    Ok(ParsedDocument {
        title,
        pages: Some(number),
        blocks: builder.finish()?,
        ..ParsedDocument::default()
    })
}

fn corrupt(detail: impl Into<String>) -> ParseError {
    ParseError::Corrupt {
        format: FORMAT,
        detail: detail.into(),
    }
}

/// The relationships part of the part `name`: `dir/_rels/file.rels`.
fn rels_name(name: &str) -> String {
    match name.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}/_rels/{file}.rels"),
        None => format!("_rels/{name}.rels"),
    }
}

/// The relationship id (`r:id`) of an element: the prefixed attribute named
/// `id`, which an unprefixed `id` (a slide's own number) is not.
fn relationship_id(element: &BytesStart<'_>) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.prefix().is_some() && a.key.local_name().as_ref() == "id")
        .map(|a| a.value.into_owned())
}

/// The relationship ids of the slides, in the order of `p:sldIdLst`.
fn slide_order(xml: &[u8], budget: &Budget<'_>) -> Result<Vec<String>, ParseError> {
    let mut part = Part::new(xml, "ppt/presentation.xml", FORMAT);
    let mut ids = Vec::new();
    loop {
        let (namespace, event) = part.next(budget)?;
        let in_p = Ns::of(namespace) == Ns::P;
        match &event {
            Event::Start(element) | Event::Empty(element) if in_p && element.local_name().as_ref() == "sldId" => {
                if let Some(id) = relationship_id(element) {
                    ids.push(id);
                }
            }
            Event::Eof => return Ok(ids),
            _ => {}
        }
    }
}

/// The internal relationships of the part `source`: id to (type, the entry
/// the target names).
fn relationships(source: &str, xml: &[u8], budget: &Budget<'_>) -> Result<HashMap<String, (String, String)>, ParseError> {
    let mut part = Part::new(xml, &rels_name(source), FORMAT);
    let mut found = HashMap::new();
    loop {
        let (_, event) = part.next(budget)?;
        match &event {
            Event::Start(element) | Event::Empty(element) if element.local_name().as_ref() == "Relationship" => {
                let external = attribute(element, "TargetMode").is_some_and(|mode| mode == "External");
                if let (false, Some(id), Some(target)) = (external, attribute(element, "Id"), attribute(element, "Target")) {
                    let kind = attribute(element, "Type").unwrap_or_default();
                    found.insert(id, (kind, resolve(source, &target)));
                }
            }
            Event::Eof => return Ok(found),
            _ => {}
        }
    }
}

/// What a slide or a notes page holds, in shape-tree order.
#[derive(Debug, Default)]
struct Content {
    /// The text of the title placeholder.
    title: Option<String>,
    /// The paragraphs and tables of the other shapes.
    items: Vec<Item>,
    /// The paragraphs of the body placeholder (on a notes page: the notes).
    notes: Vec<String>,
}

#[derive(Debug)]
enum Item {
    Paragraph(String),
    /// Rows of cells.
    Table(Vec<Vec<String>>),
}

/// The shape being read.
#[derive(Debug, Default)]
struct Shape {
    /// Its placeholder type (`title`, `body`...), if it is a placeholder.
    placeholder: Option<String>,
    paragraphs: Vec<String>,
}

impl Content {
    fn read(xml: &[u8], name: &str, budget: &Budget<'_>) -> Result<Content, ParseError> {
        let mut part = Part::new(xml, name, FORMAT);
        let mut content = Content::default();
        let mut shape: Option<Shape> = None;
        let mut paragraph: Option<String> = None;
        let mut table: Option<Vec<Vec<String>>> = None;
        let mut in_text = false;
        // Nesting of `mc:Fallback`, a copy of `mc:Choice`.
        let mut fallback = 0usize;
        let mut gathered = 0usize;
        loop {
            let (namespace, event) = part.next(budget)?;
            let ns = Ns::of(namespace);
            let (start, empty) = match &event {
                Event::Start(element) => (Some(element), false),
                Event::Empty(element) => (Some(element), true),
                _ => (None, false),
            };
            if let Some(element) = start {
                match (ns, element.local_name().as_ref()) {
                    (Ns::Mc, "Fallback") if !empty => fallback += 1,
                    _ if fallback > 0 => {}
                    (Ns::P, "sp") if !empty => shape = Some(Shape::default()),
                    (Ns::P, "ph") => {
                        if let Some(shape) = shape.as_mut() {
                            // A placeholder without a type is a body one.
                            shape.placeholder = Some(attribute(element, "type").unwrap_or_else(|| "body".into()));
                        }
                    }
                    (Ns::A, "p") => paragraph = Some(String::new()),
                    (Ns::A, "t") => in_text = !empty,
                    (Ns::A, "br") => {
                        if let Some(paragraph) = paragraph.as_mut() {
                            paragraph.push(' ');
                        }
                    }
                    (Ns::A, "tbl") if table.is_none() => table = Some(Vec::new()),
                    (Ns::A, "tr") => {
                        if let Some(rows) = table.as_mut() {
                            rows.push(Vec::new());
                        }
                    }
                    (Ns::A, "tc") => {
                        if let Some(row) = table.as_mut().and_then(|rows| rows.last_mut()) {
                            row.push(String::new());
                        }
                    }
                    _ => {}
                }
            }
            let end = match &event {
                Event::End(element) => Some(element.local_name().as_ref().to_owned()),
                Event::Empty(element) => Some(element.local_name().as_ref().to_owned()),
                _ => None,
            };
            match (&event, end) {
                (Event::Eof, _) => break,
                (Event::Text(_) | Event::CData(_) | Event::GeneralRef(_), _) if in_text && fallback == 0 => {
                    if let Some(paragraph) = paragraph.as_mut() {
                        let before = paragraph.len();
                        push_text(paragraph, &event);
                        gathered += paragraph.len() - before;
                        budget.check_gathered(gathered)?;
                    }
                }
                (_, Some(name)) => match (ns, name.as_str()) {
                    (Ns::Mc, "Fallback") => fallback = fallback.saturating_sub(1),
                    _ if fallback > 0 => {}
                    (Ns::A, "t") => in_text = false,
                    (Ns::A, "p") => {
                        let text = normalize_whitespace(&paragraph.take().unwrap_or_default());
                        if let Some(cell) = table.as_mut().and_then(|rows| rows.last_mut()).and_then(|row| row.last_mut()) {
                            if !cell.is_empty() && !text.is_empty() {
                                cell.push(' ');
                            }
                            cell.push_str(&text);
                        } else if let Some(shape) = shape.as_mut() {
                            shape.paragraphs.push(text);
                        } else if !text.is_empty() {
                            content.items.push(Item::Paragraph(text));
                        }
                    }
                    (Ns::A, "tbl") => {
                        if let Some(rows) = table.take() {
                            content.items.push(Item::Table(rows));
                        }
                    }
                    (Ns::P, "sp") => {
                        if let Some(shape) = shape.take() {
                            content.add(shape);
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        Ok(content)
    }

    fn add(&mut self, shape: Shape) {
        match shape.placeholder.as_deref() {
            Some("title" | "ctrTitle") if self.title.is_none() => {
                let title = normalize_whitespace(&shape.paragraphs.join(" "));
                self.title = Some(title).filter(|t| !t.is_empty());
            }
            Some("body") => {
                self.notes.extend(shape.paragraphs.iter().filter(|p| !p.is_empty()).cloned());
                self.add_paragraphs(shape.paragraphs);
            }
            // A notes page's picture of its slide, slide number, header,
            // footer and date are not text of the slide's.
            Some("sldImg" | "sldNum" | "hdr" | "ftr" | "dt") => {}
            _ => self.add_paragraphs(shape.paragraphs),
        }
    }

    fn add_paragraphs(&mut self, paragraphs: Vec<String>) {
        self.items
            .extend(paragraphs.into_iter().filter(|p| !p.is_empty()).map(Item::Paragraph));
    }

    /// Hands the slide's paragraphs and tables to the builder.
    fn emit(&self, builder: &mut BlockBuilder<'_, '_>) -> Result<(), ParseError> {
        for item in &self.items {
            match item {
                Item::Paragraph(text) => builder.paragraph(text)?,
                Item::Table(rows) => {
                    builder.start_table()?;
                    for row in rows {
                        builder.start_row()?;
                        for cell in row {
                            builder.start_cell();
                            if let Some(open) = builder.open_cell() {
                                open.push_str(cell);
                            }
                        }
                        builder.end_row()?;
                    }
                    builder.end_table()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! ODT (OpenDocument text, what LibreOffice writes): the body of
//! `content.xml` becomes blocks. `text:h` headings build the section path at
//! their `text:outline-level` (by the rules of [`BlockBuilder`]); `text:p`
//! paragraphs, list items among them, become blocks; `table:table` tables come
//! through as tables, a row a block, a cell repeated by
//! `table:number-columns-repeated` repeated (up to [`MAX_CELL_REPEAT`]) and a
//! covered (merged-over) cell kept as a cell so columns line up. The title
//! comes from `meta.xml` (`dc:title`).
//!
//! Left out, as the DOCX parser leaves them out: footnotes and endnotes
//! (`text:note`, whose body sits inside the paragraph that cites it), comments
//! (`office:annotation`), the deleted text that tracked changes keep
//! (`text:tracked-changes`), and generated indexes (a table of contents
//! repeats the headings).
//!
//! An ODT is a zip archive, read through [`Archive`] with the same limits as
//! DOCX, and its XML through [`Part`], which refuses any document type
//! declaration. A password-protected ODT keeps its parts encrypted and says
//! so in `META-INF/manifest.xml`; it is reported as encrypted.

use quick_xml::events::{BytesStart, Event};

use super::blocks::BlockBuilder;
use super::xml::{self, Part, attribute, push_text};
use super::zip::Archive;
use super::{Block, Budget, ParseError, ParsedDocument, normalize_whitespace};

const FORMAT: &str = "odt";
const OFFICE: &str = "urn:oasis:names:tc:opendocument:xmlns:office:1.0";
const TEXT: &str = "urn:oasis:names:tc:opendocument:xmlns:text:1.0";
const TABLE: &str = "urn:oasis:names:tc:opendocument:xmlns:table:1.0";
const MANIFEST: &str = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0";
/// How many times a repeated table cell is repeated at most: text tables
/// have far fewer columns, and each copy costs a cell.
pub const MAX_CELL_REPEAT: usize = 1024;
/// Elements of the text namespace whose content is left out.
const SKIPPED_TEXT: [&str; 9] = [
    "note",
    "tracked-changes",
    "table-of-content",
    "illustration-index",
    "table-index",
    "object-index",
    "user-index",
    "alphabetical-index",
    "bibliography",
];

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    let mut archive = Archive::open(bytes, FORMAT, budget)?;
    refuse_encrypted(&mut archive, FORMAT, budget)?;
    let content = archive.require("content.xml", budget)?;
    let title = match archive.read("meta.xml", budget)? {
        Some(meta) => xml::dc_title(&meta, "meta.xml", FORMAT, budget)?,
        None => None,
    };
    let blocks = body(&content, budget)?;
    Ok(ParsedDocument {
        title,
        pages: None,
        blocks,
        ..ParsedDocument::default()
    })
}

/// Errs with [`ParseError::Encrypted`] when `META-INF/manifest.xml` describes
/// an encrypted entry, as a password-protected OpenDocument file's does.
pub fn refuse_encrypted(archive: &mut Archive<'_>, format: &'static str, budget: &Budget<'_>) -> Result<(), ParseError> {
    let Some(manifest) = archive.read("META-INF/manifest.xml", budget)? else {
        return Ok(());
    };
    let mut part = Part::new(&manifest, "META-INF/manifest.xml", format);
    loop {
        let (namespace, event) = part.next(budget)?;
        match &event {
            Event::Start(element) | Event::Empty(element)
                if namespace == MANIFEST && element.local_name().as_ref() == "encryption-data" =>
            {
                return Err(ParseError::Encrypted { format });
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// The namespaces this parser tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Office,
    Text,
    Table,
    Other,
}

impl Ns {
    fn of(namespace: &str) -> Ns {
        match namespace {
            ns if ns == OFFICE => Ns::Office,
            ns if ns == TEXT => Ns::Text,
            ns if ns == TABLE => Ns::Table,
            _ => Ns::Other,
        }
    }
}

/// The state of the walk through `content.xml`.
struct Body<'b, 'l> {
    builder: BlockBuilder<'b, 'l>,
    /// Inside `office:body`, where the document's text is.
    in_body: bool,
    /// The open paragraphs and headings, innermost last (a text box anchored
    /// in a paragraph holds paragraphs of its own), with their heading levels.
    paragraphs: Vec<(String, Option<usize>)>,
    /// Nesting inside an element whose content is left out.
    skipped: usize,
    /// How many times the open cell is repeated.
    repeat: usize,
}

fn body(xml: &[u8], budget: &mut Budget<'_>) -> Result<Vec<Block>, ParseError> {
    let mut part = Part::new(xml, "content.xml", FORMAT);
    let mut state = Body {
        builder: BlockBuilder::new(budget),
        in_body: false,
        paragraphs: Vec::new(),
        skipped: 0,
        repeat: 1,
    };
    loop {
        let (namespace, event) = part.next(state.builder.budget())?;
        let namespace = Ns::of(namespace);
        match &event {
            Event::Eof => break,
            Event::Start(element) => state.start(namespace, element)?,
            Event::Empty(element) => {
                state.start(namespace, element)?;
                state.end(namespace, element.local_name().as_ref())?;
            }
            Event::End(element) => state.end(namespace, element.local_name().as_ref())?,
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) if state.skipped == 0 => {
                if let Some((text, _)) = state.paragraphs.last_mut() {
                    push_text(text, &event);
                    let gathered = text.len();
                    state.builder.budget().check_gathered(gathered)?;
                }
            }
            _ => {}
        }
    }
    state.builder.finish()
}

impl Body<'_, '_> {
    fn start(&mut self, namespace: Ns, element: &BytesStart<'_>) -> Result<(), ParseError> {
        if self.skipped > 0 {
            self.skipped += 1;
            return Ok(());
        }
        let name = element.local_name();
        let name: &str = name.as_ref();
        match (namespace, name) {
            (Ns::Office, "body") => self.in_body = true,
            _ if !self.in_body => {}
            (Ns::Office, "annotation") => self.skipped = 1,
            (Ns::Text, skipped) if SKIPPED_TEXT.contains(&skipped) => self.skipped = 1,
            (Ns::Text, "p") => self.paragraphs.push((String::new(), None)),
            (Ns::Text, "h") => {
                let level = attribute(element, "outline-level")
                    .and_then(|level| level.trim().parse::<usize>().ok())
                    .filter(|level| *level >= 1)
                    .unwrap_or(1);
                self.paragraphs.push((String::new(), Some(level)));
            }
            (Ns::Text, "s" | "tab" | "line-break") => self.push(" "),
            (Ns::Table, "table") => self.builder.start_table()?,
            (Ns::Table, "table-row") => self.builder.start_row()?,
            (Ns::Table, "table-cell" | "covered-table-cell") => {
                self.builder.start_cell();
                self.repeat = attribute(element, "number-columns-repeated")
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(1)
                    .clamp(1, MAX_CELL_REPEAT);
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, namespace: Ns, name: &str) -> Result<(), ParseError> {
        if self.skipped > 0 {
            self.skipped -= 1;
            return Ok(());
        }
        match (namespace, name) {
            (Ns::Office, "body") => self.in_body = false,
            _ if !self.in_body => {}
            (Ns::Text, "p" | "h") => self.end_paragraph()?,
            (Ns::Table, "table-cell" | "covered-table-cell") => self.end_cell()?,
            (Ns::Table, "table-row") => self.builder.end_row()?,
            (Ns::Table, "table") => self.builder.end_table()?,
            _ => {}
        }
        Ok(())
    }

    fn push(&mut self, text: &str) {
        if let Some((paragraph, _)) = self.paragraphs.last_mut() {
            paragraph.push_str(text);
        }
    }

    /// Ends the open cell and adds its copies, if it is repeated; the copies'
    /// text is refused before it is made if it would not fit in the budget.
    fn end_cell(&mut self) -> Result<(), ParseError> {
        let repeat = std::mem::replace(&mut self.repeat, 1);
        let copy = (repeat > 1).then(|| self.builder.open_cell().map(|cell| cell.clone())).flatten();
        if let Some(copy) = &copy {
            self.builder.budget().check_gathered(copy.len().saturating_mul(repeat))?;
        }
        self.builder.end_cell();
        if let Some(copy) = copy {
            for _ in 1..repeat {
                self.builder.start_cell();
                if let Some(cell) = self.builder.open_cell() {
                    cell.push_str(&copy);
                }
                self.builder.end_cell();
            }
        }
        Ok(())
    }

    fn end_paragraph(&mut self) -> Result<(), ParseError> {
        let Some((text, level)) = self.paragraphs.pop() else {
            return Ok(());
        };
        let text = normalize_whitespace(&text);
        if self.builder.paragraph_in_cell(&text) {
            return Ok(());
        }
        match level {
            Some(level) => self.builder.heading(level, &text),
            None => self.builder.paragraph(&text),
        }
    }
}

#[cfg(test)]
mod tests;

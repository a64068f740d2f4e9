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
//! A DOCX is a zip archive, so this parser is where zip bombs land. It refuses
//! an archive with more than `max_zip_entries` entries, any entry whose
//! central-directory sizes claim more than `max_compression_ratio` times its
//! compressed size, and it reads each entry it needs through a `take()` bound
//! (the smaller of the ratio limit and what is left of `max_inflated_bytes`), so
//! a header that lies about the inflated size cannot get more bytes out than
//! that. The XML is read with quick-xml, which never expands entities by
//! itself: this parser resolves only the five predefined entities and character
//! references, and refuses any document type declaration (OOXML has none), so
//! entity-expansion and external-entity attacks have nothing to work with.
//!
//! Office saves a password-protected document as an OLE compound file holding an
//! `EncryptedPackage` stream rather than as a zip; such a file is reported as
//! encrypted.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::{NsReader, XmlVersion};
use zip::ZipArchive;
use zip::result::ZipError;

use super::blocks::BlockBuilder;
use super::{Block, Budget, ParseError, ParsedDocument, normalize_whitespace};

const FORMAT: &str = "docx";
/// The signature of an OLE compound file, the container of encrypted Office files.
const OLE_SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
/// WordprocessingML, transitional and strict.
const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const W_STRICT: &str = "http://purl.oclc.org/ooxml/wordprocessingml/main";
/// Markup compatibility: `mc:Fallback` repeats the content of `mc:Choice`.
const MC: &str = "http://schemas.openxmlformats.org/markup-compatibility/2006";
/// Dublin Core, where `docProps/core.xml` keeps the title.
const DC: &str = "http://purl.org/dc/elements/1.1/";
/// The level given to the "Title" style, above "heading 1".
const TITLE_LEVEL: u8 = 0;
/// How many XML events pass between two checks of the time budget.
const EVENTS_PER_TIME_CHECK: usize = 256;

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    if bytes.starts_with(&OLE_SIGNATURE[..4]) {
        return Err(ole_error(bytes));
    }
    let mut archive = Archive::open(bytes, budget)?;
    let document = archive
        .read("word/document.xml", budget)?
        .ok_or_else(|| corrupt("the archive has no word/document.xml"))?;
    let styles = match archive.read("word/styles.xml", budget)? {
        Some(xml) => heading_styles(&xml, budget)?,
        None => HashMap::new(),
    };
    let title = match archive.read("docProps/core.xml", budget)? {
        Some(xml) => core_title(&xml, budget)?,
        None => None,
    };
    if let Some(title) = &title {
        budget.take_text(title)?;
    }
    let blocks = body(&document, &styles, budget)?;
    Ok(ParsedDocument {
        title,
        pages: None,
        blocks,
        ..ParsedDocument::default()
    })
}

fn corrupt(detail: impl Into<String>) -> ParseError {
    ParseError::Corrupt {
        format: FORMAT,
        detail: detail.into(),
    }
}

/// An OLE file is what Office writes for a password-protected document (the
/// real package sits encrypted in an `EncryptedPackage` stream, described by
/// `EncryptionInfo`); without those streams it is a legacy binary `.doc`.
fn ole_error(bytes: &[u8]) -> ParseError {
    let utf16 = |name: &str| name.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
    let encrypted = ["EncryptedPackage", "EncryptionInfo"]
        .iter()
        .any(|name| bytes.windows(name.len() * 2).any(|window| window == utf16(name).as_slice()));
    if encrypted {
        ParseError::Encrypted { format: FORMAT }
    } else {
        corrupt("an OLE compound file (a legacy binary Word document?), not an Office Open XML package")
    }
}

/// The zip archive, with the bytes inflated from it so far.
struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    inflated: u64,
}

impl<'a> Archive<'a> {
    /// Opens the archive and checks the entry count, that no two entries share
    /// a name, and every entry's declared compression ratio against the limits.
    fn open(bytes: &'a [u8], budget: &Budget<'_>) -> Result<Self, ParseError> {
        let limits = budget.limits();
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(format!("not a zip archive: {e}")))?;
        if zip.len() > limits.max_zip_entries {
            return Err(ParseError::LimitExceeded(format!(
                "the zip archive has {} entries, more than {}",
                zip.len(),
                limits.max_zip_entries
            )));
        }
        // Two entries of one name are read differently by different readers
        // (the first or the last wins), the trick of several archive exploits;
        // the zip crate keeps only one, so it is asked whether it dropped any.
        if zip.has_duplicate_names() {
            return Err(corrupt("the zip archive has two entries of the same name"));
        }
        for index in 0..zip.len() {
            if index.is_multiple_of(EVENTS_PER_TIME_CHECK) {
                budget.check_time()?;
            }
            let entry = zip.by_index_data(index).map_err(|e| corrupt(format!("zip entry {index}: {e}")))?;
            if entry.size() > entry.compressed_size().saturating_mul(limits.max_compression_ratio) {
                return Err(ratio_exceeded(
                    &String::from_utf8_lossy(entry.name_raw()),
                    limits.max_compression_ratio,
                ));
            }
        }
        Ok(Archive { zip, inflated: 0 })
    }

    /// Reads one entry, or `None` if the archive has no entry of that name. The
    /// inflated bytes are bounded while they are read, whatever the headers say.
    fn read(&mut self, name: &str, budget: &Budget<'_>) -> Result<Option<Vec<u8>>, ParseError> {
        let limits = budget.limits();
        let file = match self.zip.by_name(name) {
            Ok(file) => file,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(ZipError::UnsupportedArchive(ZipError::PASSWORD_REQUIRED)) => return Err(ParseError::Encrypted { format: FORMAT }),
            Err(e) => return Err(corrupt(format!("{name}: {e}"))),
        };
        let by_ratio = file.compressed_size().saturating_mul(limits.max_compression_ratio);
        let by_total = limits.max_inflated_bytes.saturating_sub(self.inflated);
        let cap = by_ratio.min(by_total);
        // One byte more than the cap is read so that an entry over it is seen.
        let mut limited = file.take(cap.saturating_add(1));
        let mut inflated = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            budget.check_time()?;
            let read = limited.read(&mut chunk).map_err(|e| corrupt(format!("{name}: {e}")))?;
            if read == 0 {
                break;
            }
            inflated.extend_from_slice(&chunk[..read]);
            if inflated.len() as u64 > cap {
                return Err(if cap == by_ratio {
                    ratio_exceeded(name, limits.max_compression_ratio)
                } else {
                    ParseError::LimitExceeded(format!(
                        "more than {} bytes inflated from the zip archive",
                        limits.max_inflated_bytes
                    ))
                });
            }
        }
        self.inflated += inflated.len() as u64;
        Ok(Some(inflated))
    }
}

fn ratio_exceeded(name: &str, ratio: u64) -> ParseError {
    ParseError::LimitExceeded(format!("zip entry {name} inflates to more than {ratio} times its compressed size"))
}

/// The namespaces this parser tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    W,
    Mc,
    Dc,
    Other,
}

/// The value of an element's `val` attribute (`w:val`).
fn val(element: &BytesStart<'_>) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|attribute| attribute.key.local_name().as_ref() == "val")
        .and_then(|attribute| {
            attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(|value| value.into_owned())
        })
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

/// Reads the next XML event and the namespace of its element, refusing a
/// document type declaration so that no DTD-declared entity can be met.
fn next<'x>(reader: &mut NsReader<&'x [u8]>, part: &str) -> Result<(Ns, Event<'x>), ParseError> {
    let (namespace, event) = reader.read_resolved_event().map_err(|e| corrupt(format!("{part}: {e}")))?;
    if let Event::DocType(_) = event {
        return Err(corrupt(format!(
            "{part} has a document type declaration, which Office Open XML forbids"
        )));
    }
    let ns = match namespace {
        ResolveResult::Bound(Namespace(ns)) if ns == W || ns == W_STRICT => Ns::W,
        ResolveResult::Bound(Namespace(ns)) if ns == MC => Ns::Mc,
        ResolveResult::Bound(Namespace(ns)) if ns == DC => Ns::Dc,
        _ => Ns::Other,
    };
    Ok((ns, event))
}

/// Appends the text of a text, CDATA or entity-reference event. Only the five
/// predefined entities and character references are resolved; any other
/// reference is dropped, never expanded.
fn push_text(out: &mut String, event: &Event<'_>) {
    match event {
        Event::Text(text) => out.push_str(&text.xml10_content()),
        Event::CData(data) => out.push_str(data),
        Event::GeneralRef(reference) => {
            if let Ok(Some(ch)) = reference.resolve_char_ref() {
                out.push(ch);
            } else if let Some(text) = resolve_predefined_entity(reference) {
                out.push_str(text);
            }
        }
        _ => {}
    }
}

/// Maps the paragraph style ids of `styles.xml` that are headings to their
/// levels.
fn heading_styles(xml: &[u8], budget: &Budget<'_>) -> Result<HashMap<String, u8>, ParseError> {
    let mut reader = NsReader::from_reader(xml);
    let mut levels = HashMap::new();
    // The style being read: its id, and the level its name or outline gives.
    let mut style: Option<(String, Option<u8>)> = None;
    for count in 0usize.. {
        if count.is_multiple_of(EVENTS_PER_TIME_CHECK) {
            budget.check_time()?;
        }
        let (namespace, event) = next(&mut reader, "word/styles.xml")?;
        match &event {
            Event::Start(element) | Event::Empty(element) if namespace == Ns::W => match element.local_name().as_ref() {
                "style" => {
                    let paragraph = element
                        .attributes()
                        .flatten()
                        .any(|a| a.key.local_name().as_ref() == "type" && a.value == "paragraph");
                    let id = element
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == "styleId")
                        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()));
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

/// The `dc:title` of `docProps/core.xml`, if it is not blank.
fn core_title(xml: &[u8], budget: &Budget<'_>) -> Result<Option<String>, ParseError> {
    let mut reader = NsReader::from_reader(xml);
    let mut title: Option<String> = None;
    let mut in_title = false;
    for count in 0usize.. {
        if count.is_multiple_of(EVENTS_PER_TIME_CHECK) {
            budget.check_time()?;
        }
        let (namespace, event) = next(&mut reader, "docProps/core.xml")?;
        match &event {
            Event::Start(element) if namespace == Ns::Dc && element.local_name().as_ref() == "title" => {
                in_title = true;
                title = Some(String::new());
            }
            Event::End(element) if namespace == Ns::Dc && element.local_name().as_ref() == "title" => in_title = false,
            Event::Eof => break,
            _ if in_title => {
                if let Some(title) = title.as_mut() {
                    push_text(title, &event);
                }
            }
            _ => {}
        }
    }
    Ok(title.map(|t| normalize_whitespace(&t)).filter(|t| !t.is_empty()))
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
    let mut reader = NsReader::from_reader(xml);
    let mut state = Body {
        styles,
        builder: BlockBuilder::new(budget),
        paragraph: None,
        in_text: false,
        ignored_depth: 0,
    };
    for count in 0usize.. {
        if count.is_multiple_of(EVENTS_PER_TIME_CHECK) {
            state.builder.budget().check_time()?;
        }
        let (namespace, event) = next(&mut reader, "word/document.xml")?;
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
        if let Some(cell) = self.builder.open_cell() {
            // Paragraphs within a cell, headings included, are the cell's text.
            if !text.is_empty() {
                if !cell.is_empty() {
                    cell.push(' ');
                }
                cell.push_str(&text);
            }
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

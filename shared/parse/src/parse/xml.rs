//! The XML parts of zip-based formats (DOCX, PPTX, ODT, EPUB), read with
//! quick-xml, which never expands entities by itself. [`Part`] refuses any
//! document type declaration (none of these formats needs one), so no
//! DTD-declared entity can be met, and [`push_text`] resolves only the five
//! predefined entities and character references: entity-expansion and
//! external-entity attacks have nothing to work with.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::{NsReader, XmlVersion};

use super::{Budget, ParseError, normalize_whitespace};

/// Dublin Core, where OOXML core properties, ODF metadata and EPUB package
/// documents keep the title.
pub const DC: &str = "http://purl.org/dc/elements/1.1/";
/// How many XML events pass between two checks of the time budget.
const EVENTS_PER_TIME_CHECK: usize = 256;

/// One XML part of an archive being read.
pub struct Part<'x> {
    reader: NsReader<&'x [u8]>,
    name: String,
    format: &'static str,
    events: usize,
}

impl<'x> Part<'x> {
    /// Reads `xml`, the entry `name` of a `format` archive (both name the
    /// part in errors).
    pub fn new(xml: &'x [u8], name: &str, format: &'static str) -> Self {
        Part {
            reader: NsReader::from_reader(xml),
            name: name.to_owned(),
            format,
            events: 0,
        }
    }

    /// The next event and the namespace of its element (empty when it has
    /// none), checking the time budget now and then. A document type
    /// declaration is refused.
    pub fn next(&mut self, budget: &Budget<'_>) -> Result<(&str, Event<'x>), ParseError> {
        if self.events.is_multiple_of(EVENTS_PER_TIME_CHECK) {
            budget.check_time()?;
        }
        self.events += 1;
        let (namespace, event) = self.reader.read_resolved_event().map_err(|e| ParseError::Corrupt {
            format: self.format,
            detail: format!("{}: {e}", self.name),
        })?;
        if let Event::DocType(_) = event {
            return Err(ParseError::Corrupt {
                format: self.format,
                detail: format!("{} has a document type declaration, which the format does not allow", self.name),
            });
        }
        let namespace = match namespace {
            ResolveResult::Bound(Namespace(ns)) => ns,
            _ => "",
        };
        Ok((namespace, event))
    }
}

/// The value of an element's first attribute whose local name is `name`
/// (whatever its prefix), entity references resolved.
pub fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|attribute| attribute.key.local_name().as_ref() == name)
        .and_then(|attribute| {
            attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(|value| value.into_owned())
        })
}

/// Appends the text of a text, CDATA or entity-reference event. Only the five
/// predefined entities and character references are resolved; any other
/// reference is dropped, never expanded.
pub fn push_text(out: &mut String, event: &Event<'_>) {
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

/// The first `dc:title` of a metadata part (`docProps/core.xml`, ODF's
/// `meta.xml`, an EPUB package document), if it is not blank. Its text counts
/// against the text budget.
pub fn dc_title(xml: &[u8], name: &str, format: &'static str, budget: &mut Budget<'_>) -> Result<Option<String>, ParseError> {
    let mut part = Part::new(xml, name, format);
    let mut title: Option<String> = None;
    loop {
        let (namespace, event) = part.next(budget)?;
        let in_dc = namespace == DC;
        match &event {
            Event::Start(element) if in_dc && title.is_none() && element.local_name().as_ref() == "title" => {
                title = Some(String::new());
            }
            Event::End(element) if in_dc && element.local_name().as_ref() == "title" => break,
            Event::Eof => break,
            _ => {
                if let Some(title) = title.as_mut() {
                    push_text(title, &event);
                    budget.check_gathered(title.len())?;
                }
            }
        }
    }
    let title = title.map(|t| normalize_whitespace(&t)).filter(|t| !t.is_empty());
    if let Some(title) = &title {
        budget.take_text(title)?;
    }
    Ok(title)
}

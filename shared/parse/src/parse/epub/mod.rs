//! EPUB (2 and 3): the book's chapters in the order of its spine, each read by
//! the HTML parser into one [`BlockBuilder`], so a chapter's headings build
//! its section path exactly as a web page's do. Every chapter starts a new
//! section: the headings of the one before are closed. The package document is
//! found through `META-INF/container.xml`; its `dc:title` is the title.
//! Spine items that are not (X)HTML (an image page, say) are skipped.
//!
//! An EPUB is a zip archive, read through [`Archive`] with the same limits as
//! DOCX; the container and package documents through [`Part`], which refuses
//! any document type declaration, and the chapters through html5ever's
//! tokenizer, which expands no declared entity. A chapter that
//! `META-INF/encryption.xml` lists as encrypted (DRM; obfuscated fonts are not
//! chapters) makes the book an encrypted one.

use std::collections::{HashMap, HashSet};

use quick_xml::events::Event;

use super::blocks::BlockBuilder;
use super::xml::{self, Part, attribute};
use super::zip::{Archive, resolve};
use super::{Budget, ParseError, ParsedDocument, html};

const FORMAT: &str = "epub";
const CONTAINER: &str = "META-INF/container.xml";
const ENCRYPTION: &str = "META-INF/encryption.xml";
/// The media types of chapters the HTML parser reads.
const HTML_TYPES: [&str; 2] = ["application/xhtml+xml", "text/html"];

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    let mut archive = Archive::open(bytes, FORMAT, budget)?;
    let container = archive.require(CONTAINER, budget)?;
    let package_name = rootfile(&container, budget)?;
    let package_xml = archive.require(&package_name, budget)?;
    let package = Package::read(&package_xml, &package_name, budget)?;
    let title = xml::dc_title(&package_xml, &package_name, FORMAT, budget)?;
    let encrypted = match archive.read(ENCRYPTION, budget)? {
        Some(encryption) => encrypted_entries(&encryption, budget)?,
        None => HashSet::new(),
    };
    let mut builder = BlockBuilder::new(budget);
    for idref in &package.spine {
        let Some((name, media_type)) = package.manifest.get(idref) else {
            return Err(corrupt(format!("the spine names {idref:?}, which the manifest lacks")));
        };
        if !HTML_TYPES.contains(&media_type.as_str()) {
            continue;
        }
        if encrypted.contains(name) {
            return Err(ParseError::Encrypted { format: FORMAT });
        }
        let chapter = archive.require(name, builder.budget())?;
        // An empty heading of the outermost level closes every open heading.
        builder.heading(0, "")?;
        html::feed(&chapter, &mut builder)?;
    }
    Ok(ParsedDocument {
        title,
        pages: None,
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

/// The package document's entry, from the first `rootfile` of the container.
fn rootfile(xml: &[u8], budget: &Budget<'_>) -> Result<String, ParseError> {
    let mut part = Part::new(xml, CONTAINER, FORMAT);
    loop {
        let (_, event) = part.next(budget)?;
        match &event {
            Event::Start(element) | Event::Empty(element) if element.local_name().as_ref() == "rootfile" => {
                if let Some(path) = attribute(element, "full-path") {
                    return Ok(resolve("", &path));
                }
            }
            Event::Eof => return Err(corrupt(format!("{CONTAINER} names no package document"))),
            _ => {}
        }
    }
}

/// What the package document says about the book's files.
#[derive(Debug, Default)]
struct Package {
    /// Manifest id to (entry name, media type).
    manifest: HashMap<String, (String, String)>,
    /// The manifest ids of the spine, in reading order.
    spine: Vec<String>,
}

impl Package {
    fn read(xml: &[u8], name: &str, budget: &Budget<'_>) -> Result<Package, ParseError> {
        let mut part = Part::new(xml, name, FORMAT);
        let mut package = Package::default();
        let mut in_spine = false;
        loop {
            let (_, event) = part.next(budget)?;
            match &event {
                Event::Start(element) | Event::Empty(element) => match element.local_name().as_ref() {
                    "item" => {
                        if let (Some(id), Some(href)) = (attribute(element, "id"), attribute(element, "href")) {
                            let media_type = attribute(element, "media-type").unwrap_or_default();
                            package.manifest.insert(id, (resolve(name, &href), media_type));
                        }
                    }
                    "spine" => in_spine = matches!(event, Event::Start(_)),
                    "itemref" if in_spine => {
                        if let Some(idref) = attribute(element, "idref") {
                            package.spine.push(idref);
                        }
                    }
                    _ => {}
                },
                Event::End(element) if element.local_name().as_ref() == "spine" => in_spine = false,
                Event::Eof => return Ok(package),
                _ => {}
            }
        }
    }
}

/// The entries `META-INF/encryption.xml` lists as encrypted (its URIs are
/// relative to the archive's root).
fn encrypted_entries(xml: &[u8], budget: &Budget<'_>) -> Result<HashSet<String>, ParseError> {
    let mut part = Part::new(xml, ENCRYPTION, FORMAT);
    let mut entries = HashSet::new();
    loop {
        let (_, event) = part.next(budget)?;
        match &event {
            Event::Start(element) | Event::Empty(element) if element.local_name().as_ref() == "CipherReference" => {
                if let Some(uri) = attribute(element, "URI") {
                    entries.insert(resolve("", &uri));
                }
            }
            Event::Eof => return Ok(entries),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;

use super::*;
use crate::parse::Limits;
use crate::parse::zip::tests::zipped;

const CONTAINER_XML: &str = r#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;

fn package(manifest: &str, spine: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>A  Small Book</dc:title></metadata><manifest>{manifest}</manifest><spine>{spine}</spine></package>"#
    )
}

fn chapter(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml"><head><title>A Small Book</title></head><body>{body}</body></html>"#
    )
}

fn run(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse(bytes, &mut Budget::new(&Limits::default()))
}

/// An EPUB of three chapters whose spine order is neither the manifest's nor
/// their names'.
fn book(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let manifest = r#"<item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>
        <item id="c2" href="text/ch%202.xhtml" media-type="application/xhtml+xml"/>
        <item id="c3" href="text/ch3.xhtml" media-type="application/xhtml+xml"/>
        <item id="cover" href="images/cover.svg" media-type="image/svg+xml"/>"#;
    let spine = r#"<itemref idref="cover"/><itemref idref="c3"/><itemref idref="c1"/><itemref idref="c2" linear="no"/>"#;
    let opf = package(manifest, spine);
    let one = chapter("<h1>Beginnings</h1><p>It began&nbsp;here.</p><h2>Details</h2><p>Small ones.</p>");
    let two = chapter("<p>Notes without a heading.</p>");
    let three = chapter(
        "<section><h1>Preface</h1><p>Why this book.</p><table><tr><th>Term</th><th>Meaning</th></tr><tr><td>spine</td><td>reading order</td></tr></table></section>",
    );
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("mimetype", b"application/epub+zip"),
        ("META-INF/container.xml", CONTAINER_XML.as_bytes()),
        ("OEBPS/content.opf", opf.as_bytes()),
        ("OEBPS/text/ch1.xhtml", one.as_bytes()),
        ("OEBPS/text/ch 2.xhtml", two.as_bytes()),
        ("OEBPS/text/ch3.xhtml", three.as_bytes()),
        ("OEBPS/images/cover.svg", b"<svg><text>Cover</text></svg>"),
    ];
    entries.extend_from_slice(extra);
    zipped(&entries)
}

#[test]
fn chapters_come_in_spine_order_each_a_section_of_its_own() {
    let parsed = run(&book(&[])).unwrap();
    assert_eq!(parsed.title.as_deref(), Some("A Small Book"));
    assert_eq!(parsed.pages, None);
    let blocks: Vec<(Vec<&str>, &str)> = parsed
        .blocks
        .iter()
        .map(|b| (b.section_path.iter().map(String::as_str).collect(), b.text.as_str()))
        .collect();
    assert_eq!(
        blocks,
        [
            (vec!["Preface"], "Why this book."),
            (vec!["Preface"], "Term | Meaning"),
            (vec!["Preface"], "spine | reading order"),
            (vec!["Beginnings"], "It began here."),
            (vec!["Beginnings", "Details"], "Small ones."),
            // The next chapter's text is under none of the last one's headings.
            (vec![], "Notes without a heading."),
        ]
    );
    let header = parsed.blocks[1].row.as_ref().unwrap();
    assert!(header.header);
    assert_eq!(header.cells, ["Term", "Meaning"]);
}

#[test]
fn encrypted_chapters_and_broken_packages_are_refused() {
    let encryption = r#"<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/><enc:CipherData><enc:CipherReference URI="OEBPS/fonts/font.otf"/></enc:CipherData></enc:EncryptedData></encryption>"#;
    // Obfuscated fonts are not chapters: the book still reads.
    assert!(run(&book(&[("META-INF/encryption.xml", encryption.as_bytes())])).is_ok());
    let drm = encryption.replace("OEBPS/fonts/font.otf", "OEBPS/text/ch1.xhtml");
    assert_eq!(
        run(&book(&[("META-INF/encryption.xml", drm.as_bytes())])).unwrap_err(),
        ParseError::Encrypted { format: "epub" }
    );

    let no_container = zipped(&[("mimetype", b"application/epub+zip")]);
    assert!(run(&no_container).unwrap_err().to_string().contains("container.xml"));
    let no_rootfile = zipped(&[("META-INF/container.xml", b"<container/>")]);
    assert!(run(&no_rootfile).unwrap_err().to_string().contains("no package document"));

    let dangling = package("", r#"<itemref idref="missing"/>"#);
    let bytes = zipped(&[
        ("META-INF/container.xml", CONTAINER_XML.as_bytes()),
        ("OEBPS/content.opf", dangling.as_bytes()),
    ]);
    assert!(run(&bytes).unwrap_err().to_string().contains("missing"));

    let laughs = r#"<?xml version="1.0"?><!DOCTYPE package [<!ENTITY lol "lol">]><package>&lol;</package>"#;
    let bytes = zipped(&[
        ("META-INF/container.xml", CONTAINER_XML.as_bytes()),
        ("OEBPS/content.opf", laughs.as_bytes()),
    ]);
    assert!(run(&bytes).unwrap_err().to_string().contains("document type"));

    // A chapter's own DTD declares entities the HTML tokenizer never expands.
    let chapter = r#"<?xml version="1.0"?><!DOCTYPE html [<!ENTITY lol "lollollol">]><html><body><p>a &lol; b</p></body></html>"#;
    let opf = package(
        r#"<item id="c" href="c.xhtml" media-type="application/xhtml+xml"/>"#,
        r#"<itemref idref="c"/>"#,
    );
    let bytes = zipped(&[
        ("META-INF/container.xml", CONTAINER_XML.as_bytes()),
        ("OEBPS/content.opf", opf.as_bytes()),
        ("OEBPS/c.xhtml", chapter.as_bytes()),
    ]);
    let parsed = run(&bytes).unwrap();
    assert!(parsed.blocks.iter().all(|b| !b.text.contains("lollollol")), "{:?}", parsed.blocks);
}

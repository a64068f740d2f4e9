use super::*;
use crate::parse::Limits;
use crate::parse::zip::tests::zipped;

const NAMESPACES: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0""#;

fn content(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content {NAMESPACES}><office:automatic-styles><text:p>not in the body</text:p></office:automatic-styles><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
    )
}

fn odt(body: &str) -> Vec<u8> {
    zipped(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("content.xml", content(body).as_bytes()),
    ])
}

fn run(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse(bytes, &mut Budget::new(&Limits::default()))
}

/// Each block as (section path, text).
fn paths(document: &ParsedDocument) -> Vec<(Vec<&str>, &str)> {
    document
        .blocks
        .iter()
        .map(|b| (b.section_path.iter().map(String::as_str).collect(), b.text.as_str()))
        .collect()
}

#[test]
fn headings_nest_by_outline_level_and_lists_are_paragraphs() {
    let body = r#"
        <text:h text:outline-level="1">Installation</text:h>
        <text:p>Before you<text:s text:c="3"/>start<text:tab/>read this &amp; that.</text:p>
        <text:h text:outline-level="2">Disks</text:h>
        <text:list><text:list-item><text:p>first item</text:p></text:list-item>
            <text:list-item><text:list><text:list-item><text:p>nested item</text:p></text:list-item></text:list></text:list-item></text:list>
        <text:h text:outline-level="3">RAID</text:h>
        <text:p>Mirrors<text:line-break/>and stripes</text:p>
        <text:h text:outline-level="2">Network</text:h>
        <text:p/>
        <text:p>Cables</text:p>
        <text:h>Appendix</text:h>
        <text:p>Σύνοψη και 結論</text:p>"#;
    let meta = r#"<office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>The  Manual</dc:title></office:meta></office:document-meta>"#;
    let bytes = zipped(&[("content.xml", content(body).as_bytes()), ("meta.xml", meta.as_bytes())]);
    let parsed = run(&bytes).unwrap();
    assert_eq!(parsed.title.as_deref(), Some("The Manual"));
    assert_eq!(parsed.pages, None);
    assert_eq!(
        paths(&parsed),
        [
            (vec!["Installation"], "Before you start read this & that."),
            (vec!["Installation", "Disks"], "first item"),
            (vec!["Installation", "Disks"], "nested item"),
            (vec!["Installation", "Disks", "RAID"], "Mirrors and stripes"),
            (vec!["Installation", "Network"], "Cables"),
            (vec!["Appendix"], "Σύνοψη και 結論"),
        ]
    );
}

#[test]
fn tables_keep_their_header_row_repeated_and_covered_cells() {
    let body = r#"
        <text:h text:outline-level="1">Data</text:h>
        <table:table table:name="Sizes">
          <table:table-column table:number-columns-repeated="3"/>
          <table:table-header-rows><table:table-row>
            <table:table-cell><text:p>Name</text:p></table:table-cell>
            <table:table-cell><text:p>Size</text:p></table:table-cell>
            <table:table-cell><text:p>Note</text:p></table:table-cell>
          </table:table-row></table:table-header-rows>
          <table:table-row>
            <table:table-cell table:number-columns-spanned="2"><text:p>disk</text:p><text:p>one</text:p></table:table-cell>
            <table:covered-table-cell/>
            <table:table-cell><text:h text:outline-level="4">not a heading</text:h></table:table-cell>
          </table:table-row>
          <table:table-row>
            <table:table-cell table:number-columns-repeated="2"><text:p>x</text:p></table:table-cell>
            <table:table-cell><table:table><table:table-row><table:table-cell><text:p>inner</text:p></table:table-cell><table:table-cell><text:p>cells</text:p></table:table-cell></table:table-row></table:table></table:table-cell>
          </table:table-row>
        </table:table>
        <text:p>after</text:p>"#;
    let parsed = run(&odt(body)).unwrap();
    let rows: Vec<(bool, Vec<&str>)> = parsed
        .blocks
        .iter()
        .filter_map(|b| b.row.as_ref())
        .map(|row| (row.header, row.cells.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        rows,
        [
            (true, vec!["Name", "Size", "Note"]),
            (false, vec!["disk one", "", "not a heading"]),
            (false, vec!["x", "x", "inner cells"]),
        ]
    );
    assert_eq!(
        paths(&parsed),
        [
            (vec!["Data"], "Name | Size | Note"),
            (vec!["Data"], "disk one | not a heading"),
            (vec!["Data"], "x | x | inner cells"),
            (vec!["Data"], "after"),
        ]
    );
}

#[test]
fn notes_comments_deletions_and_indexes_are_left_out_and_text_boxes_kept() {
    let body = r#"
        <text:tracked-changes><text:changed-region><text:deletion><text:p>deleted words</text:p></text:deletion></text:changed-region></text:tracked-changes>
        <text:table-of-content><text:index-body><text:p>Chapter 1 ..... 3</text:p></text:index-body></text:table-of-content>
        <text:p>Kept<text:note text:note-class="footnote"><text:note-citation>1</text:note-citation><text:note-body><text:p>a footnote</text:p></text:note-body></text:note> text<office:annotation><text:p>a comment</text:p></office:annotation>.</text:p>
        <text:p>Anchor<draw:frame><draw:text-box><text:p>in a box</text:p></draw:text-box></draw:frame></text:p>"#;
    let parsed = run(&odt(body)).unwrap();
    let texts: Vec<&str> = parsed.blocks.iter().map(|b| b.text.as_str()).collect();
    assert_eq!(texts, ["Kept text.", "in a box", "Anchor"]);
}

#[test]
fn encrypted_and_hostile_files_are_refused() {
    let manifest = r#"<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="content.xml"><manifest:encryption-data manifest:checksum-type="SHA1/1K"/></manifest:file-entry></manifest:manifest>"#;
    let encrypted = zipped(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("META-INF/manifest.xml", manifest.as_bytes()),
        ("content.xml", b"\x01\x02 not xml"),
    ]);
    assert_eq!(run(&encrypted).unwrap_err(), ParseError::Encrypted { format: "odt" });

    let laughs = format!(
        r#"<?xml version="1.0"?><!DOCTYPE office:document-content [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><office:document-content {NAMESPACES}><office:body><office:text><text:p>&lol2;</text:p></office:text></office:body></office:document-content>"#
    );
    let error = run(&zipped(&[("content.xml", laughs.as_bytes())])).unwrap_err();
    assert!(error.to_string().contains("document type"), "{error}");

    let no_content = zipped(&[("mimetype", b"application/vnd.oasis.opendocument.text")]);
    assert!(run(&no_content).unwrap_err().to_string().contains("content.xml"));
    assert_eq!(run(b"not a zip").unwrap_err().code(), "CORRUPT_FILE");
    let unclosed = zipped(&[("content.xml", content("<text:p>x</text:h>").as_bytes())]);
    assert_eq!(run(&unclosed).unwrap_err().code(), "CORRUPT_FILE");

    // A cell repeated a billion times is repeated a bounded number of times,
    // and its copies count against the text budget before they are made.
    let repeated = r#"<table:table><table:table-row><table:table-cell table:number-columns-repeated="1000000000"><text:p>abc</text:p></table:table-cell></table:table-row></table:table>"#;
    let parsed = run(&odt(repeated)).unwrap();
    assert_eq!(parsed.blocks[0].row.as_ref().unwrap().cells.len(), MAX_CELL_REPEAT);
    let limits = Limits {
        max_text_bytes: 1000,
        ..Limits::default()
    };
    let error = parse(&odt(repeated), &mut Budget::new(&limits)).unwrap_err();
    assert_eq!(error.code(), "LIMIT_EXCEEDED", "{error}");
}

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::*;
use crate::parse::Limits;
use crate::parse::zip::OLE_SIGNATURE;

const NAMESPACES: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006""#;

/// Zips `entries` (name, content) with deflate.
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, content) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn document(body: &str) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {NAMESPACES}><w:body>{body}</w:body></w:document>"#)
}

fn paragraph(style: Option<&str>, text: &str) -> String {
    let properties = style
        .map(|s| format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#))
        .unwrap_or_default();
    format!(r#"<w:p>{properties}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>"#)
}

fn docx(body: &str) -> Vec<u8> {
    zip(&[("word/document.xml", document(body).as_bytes())])
}

fn run(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse(bytes, &mut Budget::new(&Limits::default()))
}

fn texts(document: &ParsedDocument) -> Vec<&str> {
    document.blocks.iter().map(|b| b.text.as_str()).collect()
}

#[test]
fn headings_tables_and_the_title() {
    let styles = format!(
        r#"<w:styles {NAMESPACES}>
            <w:style w:type="paragraph" w:styleId="Normal"><w:name w:val="Normal"/></w:style>
            <w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
            <w:style w:type="paragraph" w:styleId="Chapter"><w:name w:val="Chapter"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
            <w:style w:type="character" w:styleId="Heading3Char"><w:name w:val="heading 3"/></w:style>
        </w:styles>"#
    );
    let core = r#"<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Annual  Report</dc:title></cp:coreProperties>"#;
    let body = [
        paragraph(Some("Title"), "Annual Report"),
        paragraph(Some("Heading1"), "Annual Report"),
        paragraph(None, "Preface text"),
        paragraph(Some("berschrift1"), "Results"),
        r#"<w:p><w:r><w:t>Split</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve">across runs &amp; tabs</w:t></w:r></w:p>"#.to_owned(),
        paragraph(Some("Chapter"), "Details"),
        r#"<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Name</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Size</w:t></w:r></w:p></w:tc></w:tr>
           <w:tr><w:tc><w:p><w:r><w:t>disk</w:t></w:r></w:p><w:p><w:r><w:t>one</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>2 TB</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"#
            .to_owned(),
        paragraph(Some("Heading2"), "Appendix"),
        paragraph(None, "Literal id fallback"),
        paragraph(Some("berschrift1"), "Summary"),
        paragraph(None, "Σύνοψη και 結論"),
    ]
    .concat();
    let bytes = zip(&[
        ("word/document.xml", document(&body).as_bytes()),
        ("word/styles.xml", styles.as_bytes()),
        ("docProps/core.xml", core.as_bytes()),
    ]);
    let parsed = run(&bytes).unwrap();
    assert_eq!(parsed.title.as_deref(), Some("Annual Report"));
    assert_eq!(parsed.pages, None);
    let blocks: Vec<(Vec<&str>, &str)> = parsed
        .blocks
        .iter()
        .map(|b| (b.section_path.iter().map(String::as_str).collect(), b.text.as_str()))
        .collect();
    assert_eq!(
        blocks,
        [
            (vec!["Annual Report"], "Preface text"),
            (vec!["Annual Report", "Results"], "Split across runs & tabs"),
            (vec!["Annual Report", "Results", "Details"], "Name | Size"),
            (vec!["Annual Report", "Results", "Details"], "disk one | 2 TB"),
            (vec!["Annual Report", "Results", "Appendix"], "Literal id fallback"),
            (vec!["Annual Report", "Summary"], "Σύνοψη και 結論"),
        ]
    );
}

#[test]
fn copies_and_deletions_are_not_read_twice() {
    let body = format!(
        r#"<w:p><w:pPr><w:pStyle w:val="Normal"/><w:pPrChange><w:pPr><w:pStyle w:val="Heading1"/></w:pPr></w:pPrChange></w:pPr>
             <w:r><w:t>kept</w:t></w:r><w:del><w:r><w:delText>deleted</w:delText></w:r></w:del>
             <mc:AlternateContent><mc:Choice Requires="wps"><w:r><w:t> choice</w:t></w:r></mc:Choice><mc:Fallback><w:r><w:t> fallback</w:t></w:r></mc:Fallback></mc:AlternateContent></w:p>{}"#,
        paragraph(None, "next")
    );
    let parsed = run(&docx(&body)).unwrap();
    assert_eq!(texts(&parsed), ["kept choice", "next"]);
    assert!(parsed.blocks.iter().all(|b| b.section_path.is_empty()));
}

#[test]
fn a_zip_bomb_is_refused_quickly() {
    // 32 MiB of one letter deflates about a thousandfold.
    let body = paragraph(None, &"a".repeat(32 << 20));
    let bomb = docx(&body);
    assert!(bomb.len() < 1 << 20, "the test bomb should be small, is {}", bomb.len());
    let started = std::time::Instant::now();
    let error = run(&bomb).unwrap_err();
    assert_eq!(error.code(), "LIMIT_EXCEEDED", "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn a_bomb_whose_headers_lie_is_stopped_while_inflating() {
    let mut bomb = docx(&paragraph(None, &"a".repeat(8 << 20)));
    // Rewrite the inflated size in the local and central headers to the
    // compressed size, so the declared ratio is 1.
    let patch = |bomb: &mut Vec<u8>, signature: &[u8; 4], compressed_at: usize, inflated_at: usize| {
        let at = bomb.windows(4).position(|w| w == signature).unwrap();
        let compressed: [u8; 4] = bomb[at + compressed_at..at + compressed_at + 4].try_into().unwrap();
        bomb[at + inflated_at..at + inflated_at + 4].copy_from_slice(&compressed);
    };
    patch(&mut bomb, b"PK\x03\x04", 18, 22);
    patch(&mut bomb, b"PK\x01\x02", 20, 24);
    // zip refuses to inflate past the declared size by itself; were it not
    // to, the `take()` bound of the ratio would stop it.
    let error = run(&bomb).unwrap_err();
    assert!(
        matches!(&error, ParseError::LimitExceeded(_) | ParseError::Corrupt { .. }) && error.to_string().contains("size"),
        "{error}"
    );
}

#[test]
fn entry_count_and_total_inflated_size_are_bounded() {
    let names: Vec<String> = (0..20).map(|i| format!("word/media/image{i}.bin")).collect();
    let body = document(&paragraph(None, "x"));
    let mut entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"data"[..])).collect();
    entries.push(("word/document.xml", body.as_bytes()));
    let limits = Limits {
        max_zip_entries: 10,
        ..Limits::default()
    };
    let error = parse(&zip(&entries), &mut Budget::new(&limits)).unwrap_err();
    assert!(
        matches!(&error, ParseError::LimitExceeded(detail) if detail.contains("entries")),
        "{error}"
    );

    let limits = Limits {
        max_inflated_bytes: 1000,
        ..Limits::default()
    };
    let words: String = (0..400).map(|i| format!("w{i} ")).collect();
    let error = parse(&docx(&paragraph(None, &words)), &mut Budget::new(&limits)).unwrap_err();
    assert!(
        matches!(&error, ParseError::LimitExceeded(detail) if detail.contains("inflated")),
        "{error}"
    );
}

#[test]
fn an_archive_with_two_entries_of_one_name_is_refused() {
    // The zip writer refuses duplicate names, so the second entry is renamed
    // afterwards, in its local header and its central directory record alike.
    let bytes = zip(&[
        ("word/document.xml", document(&paragraph(None, "first")).as_bytes()),
        ("word/documenX.xml", document(&paragraph(None, "second")).as_bytes()),
    ]);
    let text = bytes.iter().map(|&b| b as char).collect::<String>();
    let renamed: Vec<u8> = text
        .replace("word/documenX.xml", "word/document.xml")
        .chars()
        .map(|c| c as u8)
        .collect();
    assert_eq!(renamed.len(), bytes.len());
    let error = run(&renamed).unwrap_err();
    assert!(
        matches!(&error, ParseError::Corrupt { detail, .. } if detail.contains("same name")),
        "{error}"
    );
    assert!(run(&bytes).is_ok());
}

#[test]
fn entities_are_never_expanded() {
    let laughs = format!(
        r#"<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;"><!ENTITY xxe SYSTEM "file:///etc/passwd">]><w:document {NAMESPACES}><w:body><w:p><w:r><w:t>&lol2;&xxe;</w:t></w:r></w:p></w:body></w:document>"#
    );
    let error = run(&zip(&[("word/document.xml", laughs.as_bytes())])).unwrap_err();
    assert!(
        matches!(&error, ParseError::Corrupt { detail, .. } if detail.contains("document type")),
        "{error}"
    );

    // Without a DTD an unknown reference is dropped; the predefined ones and
    // character references are resolved.
    let parsed = run(&docx(r#"<w:p><w:r><w:t>a &custom; b &lt;&#x3B1;&#946;&gt;</w:t></w:r></w:p>"#)).unwrap();
    assert_eq!(texts(&parsed), ["a b <αβ>"]);
}

#[test]
fn encrypted_legacy_and_garbage_files_are_told_apart() {
    let mut encrypted = OLE_SIGNATURE.to_vec();
    encrypted.resize(512, 0);
    encrypted.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
    encrypted.resize(2048, 0);
    assert_eq!(run(&encrypted).unwrap_err(), ParseError::Encrypted { format: "docx" });

    let mut legacy = OLE_SIGNATURE.to_vec();
    legacy.extend("WordDocument".encode_utf16().flat_map(u16::to_le_bytes));
    legacy.resize(2048, 0);
    assert_eq!(run(&legacy).unwrap_err().code(), "CORRUPT_FILE");

    assert_eq!(run(b"definitely not a zip archive").unwrap_err().code(), "CORRUPT_FILE");
    let no_document = zip(&[("word/styles.xml", b"<w:styles/>")]);
    assert!(matches!(run(&no_document).unwrap_err(), ParseError::Corrupt { detail, .. } if detail.contains("word/document.xml")));
    let truncated = docx(&paragraph(None, "text"));
    assert_eq!(run(&truncated[..truncated.len() / 2]).unwrap_err().code(), "CORRUPT_FILE");
    let unclosed = zip(&[("word/document.xml", document("<w:p><w:r><w:t>x</w:r></w:p>").as_bytes())]);
    assert_eq!(run(&unclosed).unwrap_err().code(), "CORRUPT_FILE");
}

#[test]
fn the_text_budget_is_enforced() {
    let limits = Limits {
        max_text_bytes: 50,
        ..Limits::default()
    };
    let body: String = (0..10).map(|i| paragraph(None, &format!("paragraph number {i}"))).collect();
    let error = parse(&docx(&body), &mut Budget::new(&limits)).unwrap_err();
    assert_eq!(error.code(), "LIMIT_EXCEEDED");
}

/// A `w:tc` of one paragraph per text.
fn table_cell(texts: &[&str]) -> String {
    let paragraphs: String = texts.iter().map(|text| paragraph(None, text)).collect();
    format!("<w:tc><w:tcPr><w:tcW w:w=\"2000\" w:type=\"dxa\"/></w:tcPr>{paragraphs}</w:tc>")
}

#[test]
fn tables_come_through_as_rows_of_cells_with_a_header() {
    let header_row = format!(
        r#"<w:tr><w:trPr><w:tblHeader/></w:trPr>{}{}{}</w:tr>"#,
        table_cell(&["Package"]),
        table_cell(&["Version"]),
        table_cell(&["Notes"])
    );
    let nested = format!(
        "<w:tbl><w:tr>{}{}</w:tr><w:tr>{}</w:tr></w:tbl>",
        table_cell(&["inner a"]),
        table_cell(&["inner b"]),
        table_cell(&["inner c"])
    );
    let body = [
        paragraph(Some("Heading1"), "Packages"),
        format!(
            "<w:tbl><w:tblPr/><w:tblGrid/>{header_row}<w:tr>{}{}{}</w:tr><w:tr>{}{}<w:tc><w:p/>{nested}<w:p/></w:tc></w:tr></w:tbl>",
            table_cell(&["apt", "(the tool)"]),
            table_cell(&["2.6"]),
            table_cell(&[]),
            table_cell(&["dpkg"]),
            table_cell(&["1.21"]),
        ),
        paragraph(None, "Between the tables."),
        format!(
            "<w:tbl><w:tr>{}</w:tr><w:tr>{}</w:tr></w:tbl>",
            table_cell(&["First"]),
            table_cell(&["Second"])
        ),
    ]
    .concat();
    let parsed = run(&docx(&body)).unwrap();
    assert_eq!(
        texts(&parsed),
        [
            "Package | Version | Notes",
            "apt (the tool) | 2.6",
            "dpkg | 1.21 | inner a inner b inner c",
            "Between the tables.",
            "First",
            "Second",
        ]
    );
    let rows: Vec<Option<(u32, bool, Vec<&str>)>> = parsed
        .blocks
        .iter()
        .map(|b| {
            b.row
                .as_ref()
                .map(|r| (r.table, r.header, r.cells.iter().map(String::as_str).collect()))
        })
        .collect();
    assert_eq!(
        rows,
        [
            Some((0, true, vec!["Package", "Version", "Notes"])),
            Some((0, false, vec!["apt (the tool)", "2.6", ""])),
            Some((0, false, vec!["dpkg", "1.21", "inner a inner b inner c"])),
            None,
            Some((1, true, vec!["First"])),
            Some((1, false, vec!["Second"])),
        ],
        "empty cells kept, the nested table in its cell, the second table numbered 1"
    );
    assert!(parsed.blocks.iter().all(|b| b.section_path == ["Packages"]));
}

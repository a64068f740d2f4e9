//! What every zip-based format must refuse alike: the bombs the shared
//! [`zip`](super::zip) checks exist for, each tried on DOCX, ODT, XLSX, ODS,
//! PPTX and EPUB.

use std::time::{Duration, Instant};

use super::zip::tests::zipped;
use super::*;

const ZIP_FORMATS: [Format; 6] = [Format::Docx, Format::Odt, Format::Xlsx, Format::Ods, Format::Pptx, Format::Epub];

/// A small valid document of `format`, its main part (the one the parser
/// reads first) first and ending with `padding` inside an XML comment.
fn document(format: Format, padding: &str) -> Vec<(String, Vec<u8>)> {
    let pad = |xml: &str| format!("{xml}<!--{padding}-->").into_bytes();
    let entries: Vec<(&str, Vec<u8>)> = match format {
        Format::Docx => vec![(
            "word/document.xml",
            pad(r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>words</w:t></w:r></w:p></w:body></w:document>"#),
        )],
        Format::Odt => vec![(
            "content.xml",
            pad(r#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text><text:p>words</text:p></office:text></office:body></office:document-content>"#),
        )],
        // calamine stops reading the workbook at its end, so the padding is in
        // the sheet's data, which it reads through.
        Format::Xlsx => vec![
            (
                "xl/worksheets/sheet1.xml",
                format!(r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><!--{padding}--><row r="1"><c r="A1" t="inlineStr"><is><t>words</t></is></c></row></sheetData></worksheet>"#).into_bytes(),
            ),
            (
                "xl/workbook.xml",
                (r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#).into(),
            ),
            (
                "_rels/.rels",
                br#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_vec(),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                br#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_vec(),
            ),
        ],
        Format::Ods => vec![
            (
                "content.xml",
                pad(r#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet><table:table table:name="S"><table:table-row><table:table-cell office:value-type="string"><text:p>words</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#),
            ),
            ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet".to_vec()),
            (
                "META-INF/manifest.xml",
                br#"<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/></manifest:manifest>"#.to_vec(),
            ),
        ],
        Format::Pptx => vec![
            (
                "ppt/presentation.xml",
                pad(r#"<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst></p:presentation>"#),
            ),
            (
                "ppt/_rels/presentation.xml.rels",
                br#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide1.xml"/></Relationships>"#.to_vec(),
            ),
            (
                "ppt/slides/slide1.xml",
                br#"<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>words</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#.to_vec(),
            ),
        ],
        Format::Epub => vec![
            (
                "META-INF/container.xml",
                pad(r#"<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="book.opf"/></rootfiles></container>"#),
            ),
            (
                "book.opf",
                br#"<package xmlns="http://www.idpf.org/2007/opf"><manifest><item id="c" href="c.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c"/></spine></package>"#.to_vec(),
            ),
            ("c.xhtml", b"<html><body><p>words</p></body></html>".to_vec()),
        ],
        _ => unreachable!("{format:?} is not zip-based"),
    };
    entries.into_iter().map(|(name, content)| (name.to_owned(), content)).collect()
}

fn archive(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<(&str, &[u8])> = entries.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    zipped(&entries)
}

/// Parses under `limits`; a bomb must be refused within two seconds.
fn run(format: Format, bytes: &[u8], limits: &Limits) -> Result<ParsedDocument, ParseError> {
    let started = Instant::now();
    let result = parse(format, bytes, limits);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{format:?} took {:?}",
        started.elapsed()
    );
    result
}

fn limit_detail(format: Format, result: Result<ParsedDocument, ParseError>) -> String {
    match result {
        Err(ParseError::LimitExceeded(detail)) => detail,
        other => panic!("{format:?}: {other:?}"),
    }
}

#[test]
fn every_zip_format_reads_its_small_document() {
    for format in ZIP_FORMATS {
        let parsed = run(format, &archive(&document(format, "")), &Limits::default()).unwrap();
        let text: Vec<&str> = parsed.blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(text, ["words"], "{format:?}");
    }
}

#[test]
fn every_zip_format_refuses_too_many_entries() {
    let limits = Limits {
        max_zip_entries: 10,
        ..Limits::default()
    };
    for format in ZIP_FORMATS {
        let mut entries = document(format, "");
        entries.extend((0..20).map(|i| (format!("media/image{i}.bin"), b"data".to_vec())));
        let detail = limit_detail(format, run(format, &archive(&entries), &limits));
        assert!(detail.contains("entries"), "{format:?}: {detail}");
    }
}

#[test]
fn every_zip_format_refuses_an_entry_of_a_high_ratio() {
    for format in ZIP_FORMATS {
        // A megabyte of zeros, which deflates a thousandfold, in an entry the
        // parser never reads.
        let mut entries = document(format, "");
        entries.push(("media/filler.bin".into(), vec![0; 1 << 20]));
        let detail = limit_detail(format, run(format, &archive(&entries), &Limits::default()));
        assert!(detail.contains("times its compressed size"), "{format:?}: {detail}");
    }
}

#[test]
fn every_zip_format_bounds_what_it_inflates_in_all() {
    let limits = Limits {
        max_inflated_bytes: 4000,
        ..Limits::default()
    };
    // Words that deflate only a few times over.
    let words: String = (0..1500).map(|i| format!("{:x} ", i * 7919)).collect();
    for format in ZIP_FORMATS {
        let detail = limit_detail(format, run(format, &archive(&document(format, &words)), &limits));
        assert!(detail.contains("inflate"), "{format:?}: {detail}");
    }
}

#[test]
fn every_zip_format_stops_an_entry_whose_headers_lie_about_its_size() {
    // 8 MiB of spaces in the main part, whose local and central headers are
    // rewritten to claim it is no larger than it is compressed.
    let spaces = " ".repeat(8 << 20);
    for format in ZIP_FORMATS {
        let mut bomb = archive(&document(format, &spaces));
        let patch = |bomb: &mut Vec<u8>, signature: &[u8; 4], compressed_at: usize, inflated_at: usize| {
            let at = bomb.windows(4).position(|w| w == signature).unwrap();
            let compressed: [u8; 4] = bomb[at + compressed_at..at + compressed_at + 4].try_into().unwrap();
            bomb[at + inflated_at..at + inflated_at + 4].copy_from_slice(&compressed);
        };
        patch(&mut bomb, b"PK\x03\x04", 18, 22);
        patch(&mut bomb, b"PK\x01\x02", 20, 24);
        let error = match run(format, &bomb, &Limits::default()) {
            Err(error) => error,
            Ok(parsed) => panic!("{format:?} read {} blocks", parsed.blocks.len()),
        };
        assert!(matches!(error.code(), "LIMIT_EXCEEDED" | "CORRUPT_FILE"), "{format:?}: {error}");
    }
}

//! The PDF parser end to end, on documents built with lopdf.

use lopdf::content::{Content, Operation};
use lopdf::{Bookmark, Object, Stream, StringFormat, dictionary};

use super::*;
use crate::parse::Limits;

/// The operators that draw `lines` (x, y, text) in 12-point Helvetica.
fn text_operations(lines: &[(i64, i64, &str)]) -> Vec<Operation> {
    let mut operations = vec![Operation::new("BT", vec![]), Operation::new("Tf", vec!["F1".into(), 12.into()])];
    for (x, y, text) in lines {
        operations.push(Operation::new(
            "Tm",
            vec![1.into(), 0.into(), 0.into(), 1.into(), (*x).into(), (*y).into()],
        ));
        operations.push(Operation::new("Tj", vec![Object::string_literal(*text)]));
    }
    operations.push(Operation::new("ET", vec![]));
    operations
}

/// A PDF whose pages draw the given operators, with an optional title and
/// one bookmark per (title, level, page index).
fn pdf(pages: Vec<Vec<Operation>>, title: Option<&str>, bookmarks: &[(&str, Option<u32>, usize)], compress: bool) -> Vec<u8> {
    let mut document = Document::with_version("1.5");
    let pages_id = document.new_object_id();
    let font_id = document.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = document.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = Vec::new();
    for operations in pages {
        let content = Content { operations }.encode().unwrap();
        let content_id = document.add_object(Stream::new(dictionary! {}, content));
        kids.push(document.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id }));
    }
    document.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids.iter().map(|id| Object::from(*id)).collect::<Vec<_>>(),
            "Count" => kids.len() as i64,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    document.trailer.set("Root", catalog_id);
    if let Some(title) = title {
        let info_id = document.add_object(dictionary! { "Title" => Object::String(title.as_bytes().to_vec(), StringFormat::Literal) });
        document.trailer.set("Info", info_id);
    }
    for (title, parent, page) in bookmarks {
        document.add_bookmark(Bookmark::new((*title).to_owned(), [0.0; 3], 0, kids[*page]), *parent);
    }
    if let Some(outline_id) = document.build_outline() {
        document.get_dictionary_mut(catalog_id).unwrap().set("Outlines", outline_id);
    }
    if compress {
        document.compress();
    }
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

fn run(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse(bytes, &mut Budget::new(&Limits::default()))
}

#[test]
fn pages_paragraphs_title_and_outline() {
    let page_one = text_operations(&[
        (72, 760, "Introduction"),
        (72, 730, "The first paragraph starts here"),
        (72, 716, "and continues on a second line."),
        (72, 680, "A second para-"),
        (72, 666, "graph follows."),
    ]);
    let page_two = text_operations(&[
        (72, 760, "Some text before the heading."),
        (72, 720, "Details"),
        (72, 690, "Text under details."),
    ]);
    let bytes = pdf(
        vec![page_one, page_two],
        Some("A  Test Document"),
        &[("Introduction", None, 0), ("Details", None, 1)],
        true,
    );
    let parsed = run(&bytes).unwrap();
    assert_eq!(parsed.title.as_deref(), Some("A Test Document"));
    assert_eq!(parsed.pages, Some(2));
    let blocks: Vec<(Option<u32>, Vec<&str>, &str)> = parsed
        .blocks
        .iter()
        .map(|b| (b.page, b.section_path.iter().map(String::as_str).collect(), b.text.as_str()))
        .collect();
    assert_eq!(
        blocks,
        [
            (Some(1), vec!["Introduction"], "Introduction"),
            (
                Some(1),
                vec!["Introduction"],
                "The first paragraph starts here and continues on a second line."
            ),
            (Some(1), vec!["Introduction"], "A second para-graph follows."),
            (Some(2), vec!["Introduction"], "Some text before the heading."),
            (Some(2), vec!["Details"], "Details"),
            (Some(2), vec!["Details"], "Text under details."),
        ]
    );
}

#[test]
fn words_are_separated_by_where_they_are_drawn() {
    // Ghostscript-style output: each word placed on its own, with kerning
    // gaps in TJ arrays; and a word split in two strings that touch.
    let operations = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 10.into()]),
        Operation::new("Td", vec![72.into(), 700.into()]),
        Operation::new("Tj", vec![Object::string_literal("General")]),
        Operation::new("Td", vec![45.into(), 0.into()]),
        Operation::new("Tj", vec![Object::string_literal("Commands")]),
        Operation::new(
            "TJ",
            vec![Object::Array(vec![
                (-300).into(),
                Object::string_literal("Man"),
                (-20).into(),
                Object::string_literal("ual"),
                (-600).into(),
                Object::string_literal("BASH(1)"),
            ])],
        ),
        Operation::new("ET", vec![]),
    ];
    let parsed = run(&pdf(vec![operations], None, &[], false)).unwrap();
    assert_eq!(parsed.blocks.len(), 1);
    assert_eq!(parsed.blocks[0].text, "General Commands Manual BASH(1)");
    assert_eq!(parsed.title, None);
}

#[test]
fn a_runaway_stream_is_refused() {
    let mut operations = text_operations(&[(72, 700, "visible")]);
    // A comment-free no-op repeated: about 2 MiB once inflated, a few KiB deflated.
    operations.extend(
        (0..200_000)
            .map(|_| Operation::new("q", vec![]))
            .chain((0..200_000).map(|_| Operation::new("Q", vec![]))),
    );
    let bytes = pdf(vec![operations], None, &[], true);
    assert!(bytes.len() < 100_000, "the test PDF should be small, is {}", bytes.len());
    let limits = Limits {
        max_pdf_stream_bytes: 256 << 10,
        ..Limits::default()
    };
    let error = parse(&bytes, &mut Budget::new(&limits)).unwrap_err();
    assert!(
        matches!(&error, ParseError::LimitExceeded(detail) if detail.contains("inflates")),
        "{error}"
    );
    // The same file is fine under the default limit.
    assert_eq!(run(&bytes).unwrap().blocks[0].text, "visible");
}

#[test]
fn pages_that_inflate_too_much_together_are_refused() {
    // Three pages of about 800 KiB each once inflated: every stream is under the
    // per-stream bound, together they are over the total.
    let page = || {
        let mut operations = text_operations(&[(72, 700, "visible")]);
        operations.extend((0..200_000).map(|_| Operation::new("q", vec![])));
        operations.extend((0..200_000).map(|_| Operation::new("Q", vec![])));
        operations
    };
    let bytes = pdf(vec![page(), page(), page()], None, &[], true);
    let limits = Limits {
        max_inflated_bytes: 2 << 20,
        ..Limits::default()
    };
    let error = parse(&bytes, &mut Budget::new(&limits)).unwrap_err();
    assert!(
        matches!(&error, ParseError::LimitExceeded(detail) if detail.contains("decompressed in all")),
        "{error}"
    );
    assert_eq!(run(&bytes).unwrap().blocks.len(), 3);
}

#[test]
fn a_file_of_too_many_objects_is_refused() {
    let bytes = pdf(vec![text_operations(&[(72, 700, "visible")])], None, &[], false);
    let objects = Document::load_mem(&bytes).unwrap().objects.len();
    let limits = Limits {
        max_pdf_objects: objects - 1,
        ..Limits::default()
    };
    let error = parse(&bytes, &mut Budget::new(&limits)).unwrap_err();
    assert!(
        matches!(&error, ParseError::LimitExceeded(detail) if detail.contains("objects")),
        "{error}"
    );
}

/// A PDF of `objects` (numbered from 1, the first the catalog) with a
/// classic cross-reference table, for files lopdf's writer cannot make.
fn raw_pdf(objects: &[String]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", index + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let trailer = format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1);
    out.extend_from_slice(trailer.as_bytes());
    out
}

#[test]
fn deep_nesting_is_left_unread_without_exhausting_the_stack() {
    // 200,000 nested arrays in the page dictionary: a recursive reader would
    // overflow the stack of this test thread (2 MiB). lopdf stops at 100
    // levels and drops the object, so the page has no content to read.
    let content = "BT /F1 12 Tf 72 700 Td (visible) Tj ET";
    let objects = |page_extra: &str| {
        raw_pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
            format!("<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> {page_extra}>>"),
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
        ])
    };
    assert_eq!(run(&objects("")).unwrap().blocks[0].text, "visible");
    let deep = format!("/Deep {}{} ", "[".repeat(200_000), "]".repeat(200_000));
    match run(&objects(&deep)) {
        Ok(document) => assert!(document.blocks.is_empty(), "{document:?}"),
        Err(error) => assert_eq!(error.code(), "CORRUPT_FILE", "{error}"),
    }
}

#[test]
fn a_runaway_object_stream_is_refused_while_loading() {
    let mut document = Document::load_mem(&pdf(vec![text_operations(&[(72, 700, "visible")])], None, &[], false)).unwrap();
    // A 2 MiB string in an object that the writer packs into an object
    // stream, which lopdf inflates while loading.
    let filler = document.add_object(Object::String(vec![b'a'; 2 << 20], StringFormat::Literal));
    document.trailer.set("Filler", filler);
    let mut bytes = Vec::new();
    document.save_modern(&mut bytes).unwrap();
    assert!(bytes.len() < 100_000, "the test PDF should be small, is {}", bytes.len());
    let limits = Limits {
        max_pdf_stream_bytes: 256 << 10,
        ..Limits::default()
    };
    let error = parse(&bytes, &mut Budget::new(&limits)).unwrap_err();
    assert_eq!(error.code(), "LIMIT_EXCEEDED", "{error}");
    assert_eq!(run(&bytes).unwrap().blocks[0].text, "visible");
}

#[test]
fn a_file_that_needs_a_password_is_encrypted() {
    let mut document = Document::load_mem(&pdf(vec![text_operations(&[(72, 700, "secret")])], None, &[], false)).unwrap();
    // A standard security handler whose user password is not empty: the
    // check values match no password.
    let encrypt_id = document.add_object(dictionary! {
        "Filter" => "Standard",
        "V" => 1,
        "R" => 2,
        "Length" => 40,
        "P" => -44,
        "O" => Object::String(vec![0x11; 32], StringFormat::Hexadecimal),
        "U" => Object::String(vec![0x22; 32], StringFormat::Hexadecimal),
    });
    document.trailer.set("Encrypt", encrypt_id);
    document.trailer.set(
        "ID",
        vec![
            Object::String(vec![1; 16], StringFormat::Hexadecimal),
            Object::String(vec![1; 16], StringFormat::Hexadecimal),
        ],
    );
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    assert_eq!(run(&bytes).unwrap_err(), ParseError::Encrypted { format: "pdf" });
}

#[test]
fn garbage_and_broken_files_are_corrupt() {
    assert_eq!(run(b"this is not a PDF at all").unwrap_err().code(), "CORRUPT_FILE");
    assert_eq!(
        run(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\ngarbage that is not a PDF body\n%%EOF")
            .unwrap_err()
            .code(),
        "CORRUPT_FILE"
    );
    let garbage: Vec<u8> = b"%PDF-1.4\n"
        .iter()
        .copied()
        .chain((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8))
        .collect();
    assert_eq!(run(&garbage).unwrap_err().code(), "CORRUPT_FILE");
}

#[test]
fn the_text_budget_is_enforced() {
    let lines: Vec<(i64, i64, String)> = (0..20).map(|i| (72, 800 - 30 * i, format!("paragraph number {i}"))).collect();
    let lines: Vec<(i64, i64, &str)> = lines.iter().map(|(x, y, t)| (*x, *y, t.as_str())).collect();
    let bytes = pdf(vec![text_operations(&lines)], None, &[], false);
    let limits = Limits {
        max_text_bytes: 100,
        ..Limits::default()
    };
    assert_eq!(parse(&bytes, &mut Budget::new(&limits)).unwrap_err().code(), "LIMIT_EXCEEDED");
    assert_eq!(run(&bytes).unwrap().blocks.len(), 20);
}

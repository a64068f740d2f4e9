use super::*;
use crate::parse::Limits;
use crate::parse::zip::tests::zipped;

const NAMESPACES: &str = r#"xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006""#;
const SLIDE: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide";
const NOTES: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide";

/// A shape: its placeholder type (`Some("")` for one without a type) and
/// paragraphs.
fn shape(placeholder: Option<&str>, paragraphs: &[&str]) -> String {
    let ph = match placeholder {
        Some("") => "<p:ph/>".to_owned(),
        Some(kind) => format!(r#"<p:ph type="{kind}"/>"#),
        None => String::new(),
    };
    let paragraphs: String = paragraphs.iter().map(|p| format!("<a:p><a:r><a:t>{p}</a:t></a:r></a:p>")).collect();
    format!(
        r#"<p:sp><p:nvSpPr><p:cNvPr id="2" name="x"/><p:cNvSpPr/><p:nvPr>{ph}</p:nvPr></p:nvSpPr><p:txBody><a:bodyPr/>{paragraphs}</p:txBody></p:sp>"#
    )
}

fn slide(shapes: &str) -> String {
    format!(r#"<?xml version="1.0"?><p:sld {NAMESPACES}><p:cSld><p:spTree>{shapes}</p:spTree></p:cSld></p:sld>"#)
}

fn notes(shapes: &str) -> String {
    format!(r#"<?xml version="1.0"?><p:notes {NAMESPACES}><p:cSld><p:spTree>{shapes}</p:spTree></p:cSld></p:notes>"#)
}

/// A presentation of `slides` (file name, XML, notes XML), shown in the
/// order given, whatever their names.
fn pptx(slides: &[(&str, String, Option<String>)]) -> Vec<u8> {
    let ids: String = (0..slides.len())
        .map(|i| format!(r#"<p:sldId id="{}" r:id="rId{}"/>"#, 256 + i, i + 7))
        .collect();
    let presentation = format!(r#"<p:presentation {NAMESPACES}><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"#);
    let rels: String = slides
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| format!(r#"<Relationship Id="rId{}" Type="{SLIDE}" Target="slides/{name}"/>"#, i + 7))
        .collect();
    let rels = format!(r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#);
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        ("ppt/presentation.xml".into(), presentation.into_bytes()),
        ("ppt/_rels/presentation.xml.rels".into(), rels.into_bytes()),
    ];
    for (name, xml, notes) in slides {
        entries.push((format!("ppt/slides/{name}"), xml.clone().into_bytes()));
        if let Some(notes) = notes {
            let notes_name = format!("notes-{name}");
            let rels = format!(
                r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{NOTES}" Target="../notesSlides/{notes_name}"/><Relationship Id="rId2" Type="x" Target="https://example.invalid/" TargetMode="External"/></Relationships>"#
            );
            entries.push((format!("ppt/slides/_rels/{name}.rels"), rels.into_bytes()));
            entries.push((format!("ppt/notesSlides/{notes_name}"), notes.clone().into_bytes()));
        }
    }
    let entries: Vec<(&str, &[u8])> = entries.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    zipped(&entries)
}

fn run(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse(bytes, &mut Budget::new(&Limits::default()))
}

/// Each block as (page, section path, text).
fn blocks(document: &ParsedDocument) -> Vec<(u32, Vec<&str>, &str)> {
    document
        .blocks
        .iter()
        .map(|b| {
            (
                b.page.unwrap(),
                b.section_path.iter().map(String::as_str).collect(),
                b.text.as_str(),
            )
        })
        .collect()
}

#[test]
fn slides_in_presentation_order_titled_by_their_placeholder_with_notes_marked() {
    let first = slide(&[shape(None, &["Welcome everyone"]), shape(Some("ctrTitle"), &["Annual", "Review"])].concat());
    let first_notes = notes(
        &[
            shape(Some("sldImg"), &[]),
            shape(Some("body"), &["Thank the team.", "", "Mention the budget."]),
            shape(Some("sldNum"), &["1"]),
        ]
        .concat(),
    );
    let second = slide(
        &[
            shape(Some("title"), &["Results &amp; plans"]),
            shape(Some(""), &["Revenue grew", "Costs fell"]),
            shape(Some("ftr"), &["Confidential"]),
            r#"<mc:AlternateContent><mc:Choice Requires="p14">"#.to_owned(),
            shape(None, &["a new shape"]),
            "</mc:Choice><mc:Fallback>".to_owned(),
            shape(None, &["its old copy"]),
            "</mc:Fallback></mc:AlternateContent>".to_owned(),
        ]
        .concat(),
    );
    let third = slide(&shape(None, &["No title here"]));
    // The files' names say another order than the presentation's list.
    let bytes = pptx(&[
        ("slide9.xml", first, Some(first_notes)),
        ("slide2.xml", second, None),
        ("slide1.xml", third, Some(notes(&shape(Some("body"), &[""])))),
    ]);
    let parsed = run(&bytes).unwrap();
    assert_eq!(parsed.pages, Some(3));
    assert_eq!(
        blocks(&parsed),
        [
            (1, vec!["Annual Review"], "Welcome everyone"),
            (1, vec!["Annual Review", SPEAKER_NOTES], "Thank the team."),
            (1, vec!["Annual Review", SPEAKER_NOTES], "Mention the budget."),
            (2, vec!["Results & plans"], "Revenue grew"),
            (2, vec!["Results & plans"], "Costs fell"),
            (2, vec!["Results & plans"], "a new shape"),
            (3, vec!["Slide 3"], "No title here"),
        ]
    );
}

#[test]
fn tables_come_through_with_their_header_row() {
    let table = r#"<p:graphicFrame><a:graphic><a:graphicData><a:tbl><a:tblGrid/>
        <a:tr><a:tc><a:txBody><a:p><a:r><a:t>Region</a:t></a:r></a:p></a:txBody></a:tc><a:tc><a:txBody><a:p><a:r><a:t>Sales</a:t></a:r></a:p></a:txBody></a:tc></a:tr>
        <a:tr><a:tc gridSpan="2"><a:txBody><a:p><a:r><a:t>North</a:t></a:r></a:p><a:p><a:r><a:t>and East</a:t></a:r></a:p></a:txBody></a:tc><a:tc hMerge="1"><a:txBody><a:p/></a:txBody></a:tc></a:tr>
        </a:tbl></a:graphicData></a:graphic></p:graphicFrame>"#;
    let bytes = pptx(&[(
        "slide1.xml",
        slide(&[shape(Some("title"), &["Sales"]), table.to_owned()].concat()),
        None,
    )]);
    let parsed = run(&bytes).unwrap();
    let rows: Vec<(u32, bool, Vec<&str>)> = parsed
        .blocks
        .iter()
        .filter_map(|b| {
            b.row
                .as_ref()
                .map(|row| (b.page.unwrap(), row.header, row.cells.iter().map(String::as_str).collect()))
        })
        .collect();
    assert_eq!(rows, [(1, true, vec!["Region", "Sales"]), (1, false, vec!["North and East", ""])]);
}

#[test]
fn broken_and_encrypted_presentations_are_refused() {
    let missing = pptx(&[("slide1.xml", slide(""), None)]);
    let text = missing.iter().map(|&b| b as char).collect::<String>();
    let renamed: Vec<u8> = text
        .replace("ppt/slides/slide1.xml", "ppt/slides/slideX.xml")
        .chars()
        .map(|c| c as u8)
        .collect();
    let error = run(&renamed).unwrap_err();
    assert!(error.to_string().contains("ppt/slides/slide1.xml"), "{error}");

    let no_presentation = zipped(&[("ppt/slides/slide1.xml", slide("").as_bytes())]);
    assert!(run(&no_presentation).unwrap_err().to_string().contains("ppt/presentation.xml"));

    let mut encrypted = crate::parse::zip::OLE_SIGNATURE.to_vec();
    encrypted.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(run(&encrypted).unwrap_err(), ParseError::Encrypted { format: "pptx" });

    let laughs = r#"<?xml version="1.0"?><!DOCTYPE p:sld [<!ENTITY lol "lol">]><p:sld/>"#.to_owned();
    let error = run(&pptx(&[("slide1.xml", laughs, None)])).unwrap_err();
    assert!(error.to_string().contains("document type"), "{error}");
}

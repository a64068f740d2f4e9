use super::*;
use crate::parse::zip::tests::zipped;
use crate::parse::{Block, Limits};

const MAIN: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const RELS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
const OFFICE_DOCUMENT: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// An XLSX of `sheets` (name, state, `sheetData` rows), with shared strings
/// and a date style (style 1, built-in format 14).
fn xlsx(sheets: &[(&str, Option<&str>, &str)], strings: &[&str]) -> Vec<u8> {
    let listed: String = sheets
        .iter()
        .enumerate()
        .map(|(i, (name, state, _))| {
            let state = state.map(|s| format!(r#" state="{s}""#)).unwrap_or_default();
            format!(r#"<sheet name="{name}" sheetId="{}"{state} r:id="rId{}"/>"#, i + 1, i + 1)
        })
        .collect();
    let workbook = format!(r#"<workbook xmlns="{MAIN}" xmlns:r="{OFFICE_DOCUMENT}"><sheets>{listed}</sheets></workbook>"#);
    let rels: String = (0..sheets.len())
        .map(|i| {
            format!(
                r#"<Relationship Id="rId{}" Type="{OFFICE_DOCUMENT}/worksheet" Target="worksheets/sheet{}.xml"/>"#,
                i + 1,
                i + 1
            )
        })
        .collect();
    let rels = format!(
        r#"<Relationships xmlns="{RELS}">{rels}<Relationship Id="rIdS" Type="{OFFICE_DOCUMENT}/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rIdT" Type="{OFFICE_DOCUMENT}/styles" Target="styles.xml"/></Relationships>"#
    );
    let root_rels = format!(
        r#"<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{OFFICE_DOCUMENT}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
    );
    let shared: String = strings.iter().map(|s| format!("<si><t>{s}</t></si>")).collect();
    let shared = format!(r#"<sst xmlns="{MAIN}" count="{0}" uniqueCount="{0}">{shared}</sst>"#, strings.len());
    let styles = format!(
        r#"<styleSheet xmlns="{MAIN}"><cellXfs count="2"><xf numFmtId="0" fontId="0"/><xf numFmtId="14" fontId="0" applyNumberFormat="1"/></cellXfs></styleSheet>"#
    );
    let core = r#"<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Quarterly  figures</dc:title></cp:coreProperties>"#;
    let mut entries: Vec<(String, String)> = vec![
        ("_rels/.rels".into(), root_rels),
        ("docProps/core.xml".into(), core.into()),
        ("xl/workbook.xml".into(), workbook),
        ("xl/_rels/workbook.xml.rels".into(), rels),
        ("xl/sharedStrings.xml".into(), shared),
        ("xl/styles.xml".into(), styles),
    ];
    for (i, (_, _, rows)) in sheets.iter().enumerate() {
        entries.push((
            format!("xl/worksheets/sheet{}.xml", i + 1),
            format!(r#"<worksheet xmlns="{MAIN}"><sheetData>{rows}</sheetData></worksheet>"#),
        ));
    }
    let entries: Vec<(&str, &[u8])> = entries.iter().map(|(n, c)| (n.as_str(), c.as_bytes())).collect();
    zipped(&entries)
}

/// Each block as (section path, header row?, cells).
fn rows(blocks: &[Block]) -> Vec<(Vec<&str>, bool, Vec<&str>)> {
    blocks
        .iter()
        .map(|b| {
            let row = b.row.as_ref().expect("every block of a sheet is a table row");
            (
                b.section_path.iter().map(String::as_str).collect(),
                row.header,
                row.cells.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

fn run_xlsx(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse_xlsx(bytes, &mut Budget::new(&Limits::default()))
}

fn run_ods(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse_ods(bytes, &mut Budget::new(&Limits::default()))
}

#[test]
fn xlsx_sheets_are_sections_of_header_and_rows_with_formulas_cached_values() {
    // D6 holds a number calamine cannot read (its leading space): left out.
    let sales = r#"
        <row r="2"><c r="B2" t="s"><v>0</v></c><c r="C2" t="s"><v>1</v></c><c r="D2" t="s"><v>2</v></c><c r="E2" t="s"><v>3</v></c></row>
        <row r="3"><c r="B3" t="s"><v>4</v></c><c r="C3"><v>3</v></c><c r="D3"><f>C3*2.5</f><v>7.5</v></c><c r="E3" s="1"><v>45943.5</v></c></row>
        <row r="4"><c r="C4" s="1"/></row>
        <row r="5"><c r="B5" t="inlineStr"><is><t>Total</t></is></c><c r="D5" t="str"><f>"sum: "&amp;SUM(D3:D3)</f><v>sum: 7.5</v></c><c r="E5" t="e"><f>1/0</f><v>#DIV/0!</v></c></row>
        <row r="6"><c r="C6" t="b"><v>1</v></c><c r="D6" t="n"><v> 41</v></c><c r="E6" s="1"><v>45943</v></c></row>"#;
    let secret = r#"<row r="1"><c r="A1" t="inlineStr"><is><t>hidden salary</t></is></c></row>"#;
    let notes = r#"<row r="1"><c r="A1" t="inlineStr"><is><t>A  note</t></is></c></row>"#;
    let bytes = xlsx(
        &[
            ("Sales", None, sales),
            ("Secret", Some("hidden"), secret),
            ("Macros", Some("veryHidden"), secret),
            ("Notes", None, notes),
            ("Empty", None, ""),
        ],
        &["Region", "Units", "Revenue", "Date", "North"],
    );
    let parsed = run_xlsx(&bytes).unwrap();
    assert_eq!(parsed.title.as_deref(), Some("Quarterly figures"));
    assert_eq!(parsed.pages, None);
    assert_eq!(
        rows(&parsed.blocks),
        [
            (vec!["Sales"], true, vec!["Region", "Units", "Revenue", "Date"]),
            (vec!["Sales"], false, vec!["North", "3", "7.5", "2025-10-13 12:00:00"]),
            (vec!["Sales"], false, vec!["Total", "", "sum: 7.5", "#DIV/0!"]),
            (vec!["Sales"], false, vec!["", "TRUE", "", "2025-10-13"]),
            (vec!["Notes"], true, vec!["A note"]),
        ]
    );
    assert_eq!(parsed.blocks[1].text, "North | 3 | 7.5 | 2025-10-13 12:00:00");
    let tables: Vec<u32> = parsed.blocks.iter().map(|b| b.row.as_ref().unwrap().table).collect();
    assert_eq!(tables, [0, 0, 0, 0, 1]);
    assert!(parsed.blocks.iter().all(|b| !b.text.contains("salary")));
}

#[test]
fn xlsx_cells_are_bounded_and_hostile_workbooks_refused() {
    // Rows of two values 16384 columns apart: the empty cells between them
    // count before any is made.
    let far: String = (1..=300)
        .map(|r| format!(r#"<row r="{r}"><c r="A{r}"><v>1</v></c><c r="XFD{r}"><v>2</v></c></row>"#))
        .collect();
    let error = run_xlsx(&xlsx(&[("Far", None, &far)], &[])).unwrap_err();
    assert!(
        matches!(&error, ParseError::LimitExceeded(detail) if detail.contains("spreadsheet cells")),
        "{error}"
    );
    let limits = Limits {
        max_sheet_cells: 5,
        ..Limits::default()
    };
    let many: String = (1..=6)
        .map(|r| format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>"#))
        .collect();
    let bytes = xlsx(&[("Many", None, &many)], &[]);
    assert_eq!(parse_xlsx(&bytes, &mut Budget::new(&limits)).unwrap_err().code(), "LIMIT_EXCEEDED");
    let five: String = (1..=5)
        .map(|r| format!(r#"<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>"#))
        .collect();
    assert_eq!(
        parse_xlsx(&xlsx(&[("Five", None, &five)], &[]), &mut Budget::new(&limits))
            .unwrap()
            .blocks
            .len(),
        5
    );

    // A declared entity is not expanded.
    let laughs =
        format!(r#"<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY lol "lollollol">]><sst xmlns="{MAIN}"><si><t>a &lol; b</t></si></sst>"#);
    let rebuilt = {
        let sheet =
            format!(r#"<worksheet xmlns="{MAIN}"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData></worksheet>"#);
        let workbook = format!(
            r#"<workbook xmlns="{MAIN}" xmlns:r="{OFFICE_DOCUMENT}"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#
        );
        let rels = format!(
            r#"<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{OFFICE_DOCUMENT}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{OFFICE_DOCUMENT}/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#
        );
        let root = format!(
            r#"<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{OFFICE_DOCUMENT}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
        );
        zipped(&[
            ("_rels/.rels", root.as_bytes()),
            ("xl/workbook.xml", workbook.as_bytes()),
            ("xl/_rels/workbook.xml.rels", rels.as_bytes()),
            ("xl/sharedStrings.xml", laughs.as_bytes()),
            ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        ])
    };
    match run_xlsx(&rebuilt) {
        Ok(parsed) => assert!(parsed.blocks.iter().all(|b| !b.text.contains("lollollol")), "{:?}", parsed.blocks),
        Err(error) => assert_eq!(error.code(), "CORRUPT_FILE", "{error}"),
    }

    let mut encrypted = crate::parse::zip::OLE_SIGNATURE.to_vec();
    encrypted.extend("EncryptionInfo".encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(run_xlsx(&encrypted).unwrap_err(), ParseError::Encrypted { format: "xlsx" });
    assert_eq!(run_xlsx(b"PK\x03\x04 not really").unwrap_err().code(), "CORRUPT_FILE");
    assert_eq!(
        run_xlsx(&zipped(&[("xl/workbook.xml", b"<workbook/>")])).unwrap_err().code(),
        "CORRUPT_FILE"
    );
}

const ODS_NAMESPACES: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0""#;

const MANIFEST: &str = r#"<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;

fn ods(tables: &str) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0"?><office:document-content {ODS_NAMESPACES}><office:automatic-styles><style:style style:name="ta1" style:family="table"><style:table-properties table:display="true"/></style:style><style:style style:name="ta2" style:family="table"><style:table-properties table:display="false"/></style:style></office:automatic-styles><office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body></office:document-content>"#
    );
    let meta = r#"<office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>Budget</dc:title></office:meta></office:document-meta>"#;
    zipped(&[
        ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
        ("META-INF/manifest.xml", MANIFEST.as_bytes()),
        ("content.xml", content.as_bytes()),
        ("meta.xml", meta.as_bytes()),
    ])
}

fn cell(value: &str) -> String {
    format!(r#"<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>"#)
}

#[test]
fn ods_sheets_keep_headers_cached_formula_values_and_skip_hidden_sheets() {
    let tables = format!(
        r#"<table:table table:name="Costs" table:style-name="ta1">
             <table:table-column table:number-columns-repeated="3"/>
             <table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="3"/></table:table-row>
             <table:table-row><table:table-cell/>{}{}</table:table-row>
             <table:table-row><table:table-cell/>{}<table:table-cell table:formula="of:=[.B4]*2" office:value-type="float" office:value="84"><text:p>84</text:p></table:table-cell></table:table-row>
             <table:table-row><table:table-cell/><table:table-cell office:value-type="date" office:date-value="2024-01-31"><text:p>31/01/24</text:p></table:table-cell><table:table-cell office:value-type="boolean" office:boolean-value="true"><text:p>TRUE</text:p></table:table-cell></table:table-row>
             <table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>
           </table:table>
           <table:table table:name="Hidden" table:style-name="ta2"><table:table-row>{}</table:table-row></table:table>
           <table:table table:name="Notes"><table:table-row>{}</table:table-row></table:table>"#,
        cell("Item"),
        cell("Cost"),
        cell("Rent"),
        cell("secret"),
        cell("Fine")
    );
    let parsed = run_ods(&ods(&tables)).unwrap();
    assert_eq!(parsed.title.as_deref(), Some("Budget"));
    assert_eq!(
        rows(&parsed.blocks),
        [
            (vec!["Costs"], true, vec!["Item", "Cost"]),
            (vec!["Costs"], false, vec!["Rent", "84"]),
            (vec!["Costs"], false, vec!["2024-01-31", "TRUE"]),
            (vec!["Notes"], true, vec!["Fine"]),
        ]
    );
}

#[test]
fn ods_repeated_rows_and_columns_are_counted_before_calamine_builds_them() {
    // One row of 16384 valued cells repeated a thousand times: 16 million
    // cells from a few hundred bytes.
    let wide = r#"<table:table table:name="Bomb"><table:table-row table:number-rows-repeated="1000"><table:table-cell table:number-columns-repeated="16384" office:value-type="float" office:value="1"/></table:table-row><table:table-row><table:table-cell office:value-type="float" office:value="1"/></table:table-row></table:table>"#;
    let bytes = ods(wide);
    assert!(bytes.len() < 2000);
    let started = std::time::Instant::now();
    let error = run_ods(&bytes).unwrap_err();
    assert!(
        matches!(&error, ParseError::LimitExceeded(detail) if detail.contains("spreadsheet cells")),
        "{error}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // An empty rectangle between two values counts too.
    let apart = format!(
        r#"<table:table table:name="Apart"><table:table-row>{}<table:table-cell table:number-columns-repeated="1600"/>{}</table:table-row><table:table-row table:number-rows-repeated="100"><table:table-cell/></table:table-row><table:table-row>{}</table:table-row></table:table>"#,
        cell("a"),
        cell("b"),
        cell("c")
    );
    // 102 rows by 1602 columns.
    let limits = |cells| Limits {
        max_sheet_cells: cells,
        ..Limits::default()
    };
    let error = parse_ods(&ods(&apart), &mut Budget::new(&limits(160_000))).unwrap_err();
    assert_eq!(error.code(), "LIMIT_EXCEEDED");
    let parsed = parse_ods(&ods(&apart), &mut Budget::new(&limits(170_000))).unwrap();
    assert_eq!(parsed.blocks.len(), 2, "empty rows are left out");
    assert_eq!(parsed.blocks[0].row.as_ref().unwrap().cells.len(), 1602);

    let laughs = format!(
        r#"<?xml version="1.0"?><!DOCTYPE office:document-content [<!ENTITY lol "lol">]><office:document-content {ODS_NAMESPACES}/>"#
    );
    let bytes = zipped(&[
        ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
        ("META-INF/manifest.xml", MANIFEST.as_bytes()),
        ("content.xml", laughs.as_bytes()),
    ]);
    assert!(run_ods(&bytes).unwrap_err().to_string().contains("document type"));
}

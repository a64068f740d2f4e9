use super::*;
use crate::parse::{Block, Limits};

fn run(html: &str) -> ParsedDocument {
    parse(html.as_bytes(), &mut Budget::new(&Limits::default())).unwrap()
}

fn texts(document: &ParsedDocument) -> Vec<&str> {
    document.blocks.iter().map(|b| b.text.as_str()).collect()
}

fn block<'d>(document: &'d ParsedDocument, text: &str) -> &'d Block {
    document
        .blocks
        .iter()
        .find(|b| b.text == text)
        .unwrap_or_else(|| panic!("no block {text:?} in {:?}", texts(document)))
}

#[test]
fn headings_nest_and_reset() {
    let document = run("<html><head><title> The  Guide </title></head><body>\
         <p>intro</p>\
         <h1>Install</h1><p>one</p>\
         <h2>Disks</h2><p>two</p>\
         <h3>RAID</h3><p>three</p>\
         <h2>Network</h2><p>four</p>\
         <h1>Use</h1><p>five</p>\
         </body></html>");
    assert_eq!(document.title.as_deref(), Some("The Guide"));
    assert_eq!(texts(&document), ["intro", "one", "two", "three", "four", "five"]);
    let paths: Vec<Vec<String>> = document.blocks.iter().map(|b| b.section_path.clone()).collect();
    assert_eq!(
        paths,
        [
            vec![],
            vec!["Install".to_owned()],
            vec!["Install".to_owned(), "Disks".to_owned()],
            vec!["Install".to_owned(), "Disks".to_owned(), "RAID".to_owned()],
            vec!["Install".to_owned(), "Network".to_owned()],
            vec!["Use".to_owned()],
        ]
    );
    assert!(document.blocks.iter().all(|b| b.page.is_none()));
}

#[test]
fn scripts_styles_templates_and_comments_are_dropped() {
    let document = run(
        "<head><style>p { color: red }</style><script>var x = '<p>not text</p>';</script></head>\
         <body><noscript><p>enable js</p></noscript><!-- a comment -->\
         <template><p>hidden</p><template><p>deeper</p></template><p>still hidden</p></template>\
         <p>visible <b>text</b></p><script>document.write('</p>')</script><p>after</p></body>",
    );
    assert_eq!(texts(&document), ["visible text", "after"]);
}

#[test]
fn entities_are_decoded_and_whitespace_normalised() {
    let document = run("<p>Fish &amp; chips&nbsp;&mdash; &lt;b&gt; &#x41;&#66; caf&eacute;\n\n   ok</p>");
    // A no-break space counts as whitespace too.
    assert_eq!(texts(&document), ["Fish & chips — <b> AB café ok"]);
}

#[test]
fn pre_keeps_its_lines() {
    let document = run("<p>before</p><pre>\n$ ls   -l\n  total 0\n</pre><p>after</p>");
    assert_eq!(texts(&document), ["before", "$ ls -l\ntotal 0", "after"]);
}

#[test]
fn lists_tables_and_implicit_ends_become_blocks() {
    let document = run("<h2>Data</h2><ul><li>first<li>second</ul><p>one<p>two\
         <table><tr><th>Name<th>Size</tr><tr><td>a <p>b</p></td><td>2</td></tr>\
         <tr><td><table><tr><td>inner</td></tr></table></td><td></td></tr></table><div>tail</div>");
    assert_eq!(
        texts(&document),
        ["first", "second", "one", "two", "Name | Size", "a b | 2", "inner", "tail"]
    );
    assert_eq!(block(&document, "a b | 2").section_path, ["Data"]);
}

/// Each block's row as (table, header, cells), None for a block that is no row.
fn rows(document: &ParsedDocument) -> Vec<Option<(u32, bool, Vec<&str>)>> {
    document
        .blocks
        .iter()
        .map(|b| {
            b.row
                .as_ref()
                .map(|r| (r.table, r.header, r.cells.iter().map(String::as_str).collect()))
        })
        .collect()
}

#[test]
fn tables_come_through_as_rows_of_cells_with_a_header() {
    let document = run("<h1>Packages</h1>\
         <table><caption>Versions</caption>\
         <thead><tr><th>Package</th><th>Version</th><th>Notes</th></tr></thead>\
         <tbody><tr><td>apt <br>(the tool)</td><td>2.6</td><td></td></tr>\
         <tr><td>dpkg</td><td>1.21</td><td><table><tr><td>inner a<td>inner b<tr><td>inner c</table></td></tr></tbody>\
         </table>\
         <p>Between the tables.</p>\
         <table><tr><td>First<tr><td>Second</table>\
         <tr><td>a row outside any table</td></tr>");
    assert_eq!(
        texts(&document),
        [
            "Versions",
            "Package | Version | Notes",
            "apt (the tool) | 2.6",
            "dpkg | 1.21 | inner a inner b inner c",
            "Between the tables.",
            "First",
            "Second",
            "a row outside any table",
        ]
    );
    assert_eq!(
        rows(&document),
        [
            None,
            Some((0, true, vec!["Package", "Version", "Notes"])),
            Some((0, false, vec!["apt (the tool)", "2.6", ""])),
            Some((0, false, vec!["dpkg", "1.21", "inner a inner b inner c"])),
            None,
            Some((1, true, vec!["First"])),
            Some((1, false, vec!["Second"])),
            None,
        ],
        "empty cells kept, the nested table in its cell, a table without <th> headed by its first row"
    );
    assert!(document.blocks.iter().all(|b| b.section_path == ["Packages"]));
}

#[test]
fn non_latin_scripts_survive() {
    let document = run(
        "<title>Настольная книга</title><h1>Глава 5. Пакетная система</h1><p>Структура двоичных пакетов</p>\
         <h2>Ελληνικά</h2><p>Γειά σου κόσμε</p><h1>日本語</h1><p>パッケージ管理 中文 한국어</p>",
    );
    assert_eq!(document.title.as_deref(), Some("Настольная книга"));
    assert_eq!(
        block(&document, "Структура двоичных пакетов").section_path,
        ["Глава 5. Пакетная система"]
    );
    assert_eq!(
        block(&document, "Γειά σου κόσμε").section_path,
        ["Глава 5. Пакетная система", "Ελληνικά"]
    );
    assert_eq!(block(&document, "パッケージ管理 中文 한국어").section_path, ["日本語"]);
}

#[test]
fn a_declared_charset_is_honoured() {
    // "Привет" in windows-1251, declared both ways browsers accept.
    let cyrillic = [0xCF, 0xF0, 0xE8, 0xE2, 0xE5, 0xF2];
    for head in [
        &b"<meta charset=\"windows-1251\">"[..],
        b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1251\" />",
    ] {
        let mut html = head.to_vec();
        html.extend_from_slice(b"<p>");
        html.extend_from_slice(&cyrillic);
        html.extend_from_slice(b"</p>");
        let document = parse(&html, &mut Budget::new(&Limits::default())).unwrap();
        assert_eq!(texts(&document), ["Привет"]);
    }
    // Without a declaration the bytes are UTF-8, and a UTF-16 BOM is followed.
    let document = parse("<p>naïve</p>".as_bytes(), &mut Budget::new(&Limits::default())).unwrap();
    assert_eq!(texts(&document), ["naïve"]);
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("<p>κόσμε</p>".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let document = parse(&utf16, &mut Budget::new(&Limits::default())).unwrap();
    assert_eq!(texts(&document), ["κόσμε"]);
}

#[test]
fn svg_titles_do_not_name_the_document() {
    let document = run("<body><svg><title>icon</title></svg><title>Real</title><p>x</p></body>");
    assert_eq!(document.title.as_deref(), Some("Real"));
    assert_eq!(texts(&document), ["x"]);
}

#[test]
fn the_text_budget_stops_the_parser() {
    let limits = Limits {
        max_text_bytes: 100,
        ..Limits::default()
    };
    let html = "<p>twenty bytes long.</p>".repeat(50);
    let error = parse(html.as_bytes(), &mut Budget::new(&limits)).unwrap_err();
    assert_eq!(error.code(), "LIMIT_EXCEEDED");
    let one_run = format!("<p>{}</p>", "x".repeat(1000));
    let error = parse(one_run.as_bytes(), &mut Budget::new(&limits)).unwrap_err();
    assert_eq!(error.code(), "LIMIT_EXCEEDED");
}

#[test]
fn garbage_does_not_panic() {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let document = parse(&garbage, &mut Budget::new(&Limits::default())).unwrap();
    assert!(document.blocks.iter().all(|b| !b.text.is_empty()));
    assert_eq!(run("<<<>>></p></h1></table></tr><td>").blocks.len(), 1);
}

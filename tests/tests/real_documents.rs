//! Real documents nobody on the team wrote: the Debian manuals that
//! `scripts/install-test-documents` installs (PDF, HTML in several scripts;
//! DOCX, ODT, EPUB and PPTX converted by pandoc), the ODT, ODS and XLSX files
//! Debian packages ship, uploaded and processed end to end, their tables
//! included; and hostile files that must fail permanently, without retries.

use std::{io::Write as _, time::Duration};

use folio_proto::v1::{
    Chunk, Document, DocumentState, DownloadDocumentRequest, DownloadFormat, ListChunksRequest, ListDocumentEventsRequest, SearchMode,
    SearchRequest, document_service_client::DocumentServiceClient, search_service_client::SearchServiceClient,
};
use folio_tests::{
    Authed, TestEnv,
    relevance::{corpus_dir, documents_dir},
    wait_for,
};

async fn finished(client: &DocumentServiceClient<Authed>, id: &str) -> Document {
    wait_for(client, id, Duration::from_secs(300), "finished", |d| {
        matches!(d.state(), DocumentState::Ready | DocumentState::Failed)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_manuals_in_every_format_parse_with_their_headings_and_pages() {
    let dir = documents_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv"))
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/install-test-documents (scripts/test does)", dir.display()));
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let channel = api.authed(&member.access_token).await;
    let mut client = DocumentServiceClient::new(channel.clone());
    let mut search = SearchServiceClient::new(channel);

    let rows: Vec<Vec<String>> = manifest
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    assert!(rows.len() >= 10, "{manifest}");
    let mut uploaded = Vec::new();
    for row in &rows {
        let bytes = std::fs::read(dir.join(&row[0])).unwrap();
        uploaded.push(folio_tests::upload_document(&mut client, &row[0], &bytes).await);
    }
    let mut formats = std::collections::BTreeSet::new();
    for (row, document) in rows.iter().zip(&uploaded) {
        let (file, format, phrase, heading, pages) = (&row[0], &row[1], &row[3], &row[4], &row[5]);
        let done = finished(&client, &document.id).await;
        assert_eq!(
            done.state(),
            DocumentState::Ready,
            "{file}: {} {}",
            done.error_code,
            done.error_message
        );
        assert_eq!(&done.format, format, "{file}");
        formats.insert(format.clone());
        if pages != "-" {
            assert_eq!(done.pages.to_string(), *pages, "{file} pages");
        }
        let text = download(&mut client, &document.id, DownloadFormat::Text).await;
        let normalized = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(normalized.contains(phrase.as_str()), "{file}: {phrase:?} not in the parsed text");
        if heading != "-" {
            let mut token = String::new();
            let mut found = false;
            loop {
                let page = client
                    .list_chunks(ListChunksRequest {
                        document_id: document.id.clone(),
                        page_size: 500,
                        page_token: token,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                found |= page.chunks.iter().any(|c| c.section_path.iter().any(|h| h == heading));
                if found || page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            assert!(found, "{file}: no chunk under the heading {heading:?}");
        }
        if pages != "-" {
            // PDF pages and PPTX slides: every chunk says where it is.
            let pages: i32 = pages.parse().unwrap();
            let chunks = client
                .list_chunks(ListChunksRequest {
                    document_id: document.id.clone(),
                    page_size: 500,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .chunks;
            assert!(
                chunks
                    .iter()
                    .all(|c| c.page_start >= 1 && c.page_end >= c.page_start && c.page_end <= pages),
                "{file}: chunks carry pages"
            );
        }
        if !matches!(format.as_str(), "pdf" | "html" | "docx") {
            // Search finds the phrase in the document, with its section
            // path and slide.
            let words = phrase.replace(" | ", " ");
            let found = search
                .search(SearchRequest {
                    query: words.clone(),
                    mode: SearchMode::Keyword as i32,
                    document_ids: vec![document.id.clone()],
                    no_rerank: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .results;
            let hit = found
                .iter()
                .find(|hit| hit.text.split_whitespace().collect::<Vec<_>>().join(" ").contains(phrase.as_str()))
                .unwrap_or_else(|| panic!("{file}: search for {words:?} found no chunk with {phrase:?}: {found:?}"));
            if matches!(format.as_str(), "xlsx" | "ods") {
                assert_eq!(hit.section_path, std::slice::from_ref(heading), "{file}: a row is under its sheet");
            }
            if format == "pptx" {
                assert!(hit.page_start >= 1, "{file}: the hit names its slide");
            }
        }
    }
    assert_eq!(
        formats.into_iter().collect::<Vec<_>>(),
        ["docx", "epub", "html", "ods", "odt", "pdf", "pptx", "xlsx"]
    );

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// Document `id` in `format`, whole.
async fn download(client: &mut DocumentServiceClient<Authed>, id: &str, format: DownloadFormat) -> String {
    let mut bytes = Vec::new();
    let mut stream = client
        .download_document(DownloadDocumentRequest {
            id: id.into(),
            format: format as i32,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(part) = futures_util::StreamExt::next(&mut stream).await {
        bytes.extend(part.unwrap().data);
    }
    String::from_utf8(bytes).unwrap()
}

/// Every chunk of document `id`, in order.
async fn chunks(client: &mut DocumentServiceClient<Authed>, id: &str) -> Vec<Chunk> {
    let (mut chunks, mut token) = (Vec::new(), String::new());
    loop {
        let page = client
            .list_chunks(ListChunksRequest {
                document_id: id.into(),
                page_size: 500,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        chunks.extend(page.chunks);
        if page.next_page_token.is_empty() {
            return chunks;
        }
        token = page.next_page_token;
    }
}

/// The header row of the Debian Reference's tables of packages, as a block's
/// text.
const PACKAGES_HEADER: &str = "package | popcon | size | keyword | description";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_a_real_manual_come_back_as_markdown_tables_and_a_long_one_is_chunked_under_its_header() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let channel = api.authed(&member.access_token).await;
    let mut client = DocumentServiceClient::new(channel.clone());
    let mut search = SearchServiceClient::new(channel);
    // Chapter 11 of the Debian Reference as the package ships it, and as
    // pandoc converts it to DOCX. Its "List of graphic data tools" has 45
    // rows, several chunks long; "blender" is near its end.
    let files = [
        corpus_dir().join("debian-reference.ch11.en.html"),
        documents_dir().join("debian-reference.ch11.en.docx"),
    ];
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/install-test-documents", path.display()));
        let document = folio_tests::upload_document(&mut client, &name, &bytes).await;
        let done = finished(&client, &document.id).await;
        assert_eq!(done.state(), DocumentState::Ready, "{name}: {}", done.error_message);

        let markdown = download(&mut client, &document.id, DownloadFormat::Markdown).await;
        let table = format!("\n\n| {PACKAGES_HEADER} |\n| --- | --- | --- | --- | --- |\n| gimp | ");
        assert!(
            markdown.contains(&table),
            "{name}: no Markdown table of graphic data tools in\n{markdown}"
        );

        let chunks = chunks(&mut client, &document.id).await;
        let under_header = chunks
            .iter()
            .filter(|c| c.text.starts_with(&format!("{PACKAGES_HEADER}\n")))
            .count();
        assert!(under_header >= 3, "{name}: {under_header} chunks begin inside a table of packages");
        let blender: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| c.text.lines().any(|l| l.starts_with("blender | ")))
            .collect();
        assert!(!blender.is_empty(), "{name}: no chunk has the blender row");
        for chunk in &blender {
            assert!(
                chunk.text.starts_with(&format!("{PACKAGES_HEADER}\n")),
                "{name}: a chunk from the middle of the table does not start with its header: {:?}",
                chunk.text
            );
        }

        let results = search
            .search(SearchRequest {
                query: "3D content editor for animation".into(),
                document_ids: vec![document.id.clone()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        let hit = results
            .iter()
            .find(|r| r.text.lines().any(|l| l.starts_with("blender | ")))
            .unwrap_or_else(|| panic!("{name}: the blender row is not found: {results:#?}"));
        assert!(hit.text.starts_with(&format!("{PACKAGES_HEADER}\n")), "{name}: {:?}", hit.text);
    }
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// A DOCX whose document.xml inflates from a few KiB to 64 MiB.
fn docx_bomb() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(b"<?xml version=\"1.0\"?><Types/>").unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..64 {
        zip.write_all(&spaces).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

/// An ODS whose one row of 16,384 numbers is repeated 10,000 times: 164
/// million cells from a few hundred bytes, were they built.
fn ods_repeated_cells() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet").unwrap();
    zip.start_file("content.xml", stored).unwrap();
    zip.write_all(
        br#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"><office:body><office:spreadsheet><table:table table:name="Bomb"><table:table-row table:number-rows-repeated="10000"><table:table-cell table:number-columns-repeated="16384" office:value-type="float" office:value="1"/></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#,
    )
    .unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

/// A PDF whose one content stream inflates to 80 MiB of no-op operators.
fn pdf_runaway_stream() -> Vec<u8> {
    use lopdf::{Document as Pdf, Object, Stream, dictionary};
    let mut pdf = Pdf::with_version("1.5");
    let pages_id = pdf.new_object_id();
    let mut content = Stream::new(dictionary! {}, b"q Q\n".repeat(20 << 20));
    content.compress().unwrap();
    let content_id = pdf.add_object(content);
    let page_id = pdf.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        "Contents" => content_id,
    });
    pdf.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 }),
    );
    let catalog_id = pdf.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    pdf.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    pdf.save_to(&mut bytes).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_and_spreadsheet_bombs_and_a_pdf_runaway_stream_fail_permanently_without_retries() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    for (name, bytes, code) in [
        ("bomb.docx", docx_bomb(), "LIMIT_EXCEEDED"),
        ("bomb.ods", ods_repeated_cells(), "LIMIT_EXCEEDED"),
        ("runaway.pdf", pdf_runaway_stream(), "LIMIT_EXCEEDED"),
        ("truncated.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog".to_vec(), "CORRUPT_FILE"),
    ] {
        assert!(bytes.len() < 1 << 20, "{name} is small on the wire: {} bytes", bytes.len());
        let document = folio_tests::upload_document(&mut client, name, &bytes).await;
        let done = finished(&client, &document.id).await;
        assert_eq!(done.state(), DocumentState::Failed, "{name}");
        assert_eq!(
            (done.error_code.as_str(), done.try_number, done.will_retry),
            (code, 1, false),
            "{name}: {}",
            done.error_message
        );
        let events = client
            .list_document_events(ListDocumentEventsRequest {
                document_id: document.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        assert!(
            events.iter().all(|e| e.kind() != folio_proto::v1::EventKind::RetryScheduled),
            "{name} was retried"
        );
    }
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

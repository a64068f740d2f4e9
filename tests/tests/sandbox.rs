//! Hostile documents through the real pipeline: the worker parses each in a
//! child process (`folio-worker parse`, see worker/src/sandbox.rs) that may
//! die. Each hostile document fails permanently with its precise code on the
//! first try, while a plain document on the same worker finishes READY and
//! the worker goes on.

use std::{io::Write as _, path::Path, time::Duration};

use folio_proto::v1::{Document, DocumentState, document_service_client::DocumentServiceClient};
use folio_tests::{Authed, TestEnv, binary_path, wait_for};
use lopdf::{Document as Pdf, Object, Stream, dictionary};

const WAIT: Duration = Duration::from_secs(300);

async fn finished(client: &DocumentServiceClient<Authed>, id: &str) -> Document {
    wait_for(client, id, WAIT, "finished", |d| {
        matches!(d.state(), DocumentState::Ready | DocumentState::Failed)
    })
    .await
}

/// A PDF of `pages` pages that all draw one content stream of `inflated`
/// bytes of white space: small on the wire, `pages * inflated` to inflate,
/// and quick to read through.
fn pdf_sharing_one_stream(pages: usize, inflated: usize) -> Vec<u8> {
    let mut pdf = Pdf::with_version("1.5");
    let pages_id = pdf.new_object_id();
    let mut content = Stream::new(dictionary! {}, vec![b' '; inflated]);
    content.compress().unwrap();
    let content_id = pdf.add_object(content);
    let kids: Vec<Object> = (0..pages)
        .map(|_| {
            pdf.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
                "Contents" => content_id,
            })
            .into()
        })
        .collect();
    pdf.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => pages as i64 }),
    );
    let catalog_id = pdf.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    pdf.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    pdf.save_to(&mut bytes).unwrap();
    bytes
}

/// A one-page PDF written by hand whose page dictionary holds 200,000 nested
/// arrays: a recursive reader would overflow its stack.
fn pdf_deeply_nested() -> Vec<u8> {
    let content = "BT /F1 12 Tf 72 700 Td (visible) Tj ET";
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        format!("<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> /Deep {deep} >>"),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
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
    out.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    out
}

/// A DOCX whose `word/document.xml` appears twice: which one a reader takes
/// depends on the reader, so a scanner and folio could read different text.
fn docx_with_a_name_twice() -> Vec<u8> {
    let body = |text: &str| {
        format!(
            r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"#
        )
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(b"<?xml version=\"1.0\"?><Types/>").unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    zip.write_all(body("what a scanner reads").as_bytes()).unwrap();
    zip.start_file("word/documenT.xml", options).unwrap();
    zip.write_all(body("what folio might read").as_bytes()).unwrap();
    zip.finish().unwrap();
    // The zip writer refuses a name twice, so the second entry is renamed in
    // its local and central headers afterwards (names are outside the CRC).
    let mut bytes = out.into_inner();
    let needle = b"word/documenT.xml";
    let mut renamed = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        bytes[at + found + needle.len() - 5] = b't';
        at += found + needle.len();
        renamed += 1;
    }
    assert_eq!(renamed, 2, "a local and a central header");
    bytes
}

/// Deep HTML: a million nested elements around one sentence.
fn html_deeply_nested() -> Vec<u8> {
    let depth = 1_000_000;
    let mut out = b"<!doctype html><title>deep</title>".to_vec();
    out.extend(b"<div>".repeat(depth));
    out.extend_from_slice(b"<p>the sentence at the bottom of a million elements</p>");
    out.extend(b"</div>".repeat(depth));
    out
}

/// The parser's address space before it reads anything: a `folio-worker
/// parse` child blocked reading its request.
fn parser_baseline_bytes(program: &Path) -> u64 {
    let mut child = std::process::Command::new(program)
        .arg("parse")
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let started = std::time::Instant::now();
    let size = loop {
        let text = std::fs::read_to_string(&status).unwrap();
        let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("");
        // Sleeping: blocked on its standard input, start-up done.
        if field("State:").starts_with('S') {
            break field("VmSize:").trim_end_matches(" kB").parse::<u64>().unwrap() << 10;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the parser never waited for input");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_fail_permanently_while_a_plain_one_on_the_same_worker_is_ready() {
    // The parser may use 128 MiB above what it needs to start: a plain
    // document fits, and so does reading a 16 MiB stream (about 64 MiB at its
    // peak: the inflated stream and the page content made of it), but a
    // 60 MiB stream does not.
    let baseline = parser_baseline_bytes(&binary_path("folio-worker"));
    let mut env = TestEnv::new().await;
    env.set("FOLIO_PARSE_MEMORY_MB", ((baseline >> 20) + 128).to_string());
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);

    let cases: [(&str, Vec<u8>, &str); 4] = [
        // Forty pages draw one 16 MiB stream: 640 MiB together, over the
        // 512 MiB budget of a PDF's decompressed streams, though one page at
        // a time fits in memory.
        ("together.pdf", pdf_sharing_one_stream(40, 16 << 20), "LIMIT_EXCEEDED"),
        // One 60 MiB stream (under the 64 MiB stream limit) in a parser that
        // has 128 MiB to spare.
        ("hungry.pdf", pdf_sharing_one_stream(1, 60 << 20), "PARSE_MEMORY"),
        // lopdf stops at 100 levels and drops the object, so the page has no
        // content left to read.
        ("deep.pdf", pdf_deeply_nested(), "NO_TEXT"),
        ("twice.docx", docx_with_a_name_twice(), "CORRUPT_FILE"),
    ];
    let mut hostile = Vec::new();
    for (name, bytes, code) in cases {
        assert!(bytes.len() < 2 << 20, "{name} is small on the wire: {} bytes", bytes.len());
        hostile.push((folio_tests::upload_document(&mut client, name, &bytes).await, name, code));
    }
    let deep_html = folio_tests::upload_document(&mut client, "deep.html", &html_deeply_nested()).await;
    let plain = folio_tests::upload_document(&mut client, "plain.txt", &folio_tests::prose(2_000)).await;

    for (document, name, code) in hostile {
        let done = finished(&client, &document.id).await;
        assert_eq!(
            (done.state(), done.error_code.as_str(), done.try_number, done.will_retry),
            (DocumentState::Failed, code, 1, false),
            "{name}: {}",
            done.error_message
        );
    }
    // Deep HTML is read, not refused: the tokenizer keeps counters, not a
    // stack, so depth costs nothing.
    let deep = finished(&client, &deep_html.id).await;
    assert_eq!(deep.state(), DocumentState::Ready, "deep.html: {}", deep.error_message);
    let plain = finished(&client, &plain.id).await;
    assert_eq!(plain.state(), DocumentState::Ready, "plain.txt: {}", plain.error_message);
    // The same worker takes the next document after all of that.
    let after = folio_tests::upload_document(&mut client, "after.txt", &folio_tests::prose(500)).await;
    assert_eq!(finished(&client, &after.id).await.state(), DocumentState::Ready);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parser_that_aborts_or_hangs_fails_only_its_document() {
    // A parser program that aborts on PDFs, hangs on HTML and hands anything
    // else to the real parser: the worker must tell each ending apart.
    let dir = std::env::temp_dir().join(format!("folio-parser-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let program = dir.join("parser");
    let script = format!(
        "#!/bin/sh\nIFS= read -r request\ncase \"$request\" in\n  *'\"format\":\"pdf\"'*) kill -ABRT $$ ;;\n  *'\"format\":\"html\"'*) exec sleep 600 ;;\nesac\n{{ printf '%s\\n' \"$request\"; exec cat; }} | exec {} parse\n",
        binary_path("folio-worker").display()
    );
    std::fs::write(&program, script).unwrap();
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let mut env = TestEnv::new().await;
    env.set("FOLIO_PARSER_PATH", program.display().to_string());
    env.set("FOLIO_PARSE_TIMEOUT_SECS", "2");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);

    let pdf = folio_tests::upload_document(&mut client, "abort.pdf", &pdf_sharing_one_stream(1, 1024)).await;
    let html = folio_tests::upload_document(&mut client, "hang.html", b"<p>never read</p>").await;
    let plain = folio_tests::upload_document(&mut client, "plain.txt", &folio_tests::prose(500)).await;
    for (document, code, said) in [(pdf, "PARSE_CRASH", "SIGABRT"), (html, "PARSE_TIME", "longer than 3s")] {
        let done = finished(&client, &document.id).await;
        assert_eq!(
            (done.state(), done.error_code.as_str(), done.try_number, done.will_retry),
            (DocumentState::Failed, code, 1, false),
            "{}: {}",
            document.filename,
            done.error_message
        );
        assert!(done.error_message.contains(said), "{}: {}", document.filename, done.error_message);
    }
    let plain = finished(&client, &plain.id).await;
    assert_eq!(plain.state(), DocumentState::Ready, "{}", plain.error_message);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

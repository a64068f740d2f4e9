//! Documents end to end: upload through the real api-server, processing by a
//! real worker through RabbitMQ, state and events in Postgres.
//!
//! Over 500 lines on purpose: one file for DocumentService end to end.

use std::time::Duration;

use folio_proto::v1::{
    CancelDocumentRequest, CreateDocumentRequest, DeleteDocumentRequest, DocumentMetadata, DocumentState, DownloadFormat,
    GetDocumentRequest, ListChunksRequest, ListDocumentEventsRequest, ListDocumentsRequest, RetryDocumentRequest, UploadDocumentRequest,
    document_service_client::DocumentServiceClient, upload_document_request::Part,
};
use folio_tests::{ApiHandle, Authed, TestEnv, relevance::documents_dir, s3::S3Server, upload_ready, violated_fields, wait_for_state};
use tonic::Code;

async fn documents_as(api: &ApiHandle, token: &str) -> DocumentServiceClient<Authed> {
    DocumentServiceClient::new(api.authed(token).await)
}

fn metadata(filename: &str) -> Option<DocumentMetadata> {
    Some(DocumentMetadata {
        filename: filename.into(),
        ..Default::default()
    })
}

/// How long a small document may take to reach the state a test waits for.
const WAIT: Duration = Duration::from_secs(30);

const MARKDOWN: &str = "# Field Guide\n\nA guide to the birds of the marsh.\n\n## Herons\n\nThe grey heron stands still in shallow water for hours.\n\n## Rails\n\nThe water rail is heard far more often than it is seen.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_markdown_document_is_parsed_chunked_embedded_and_indexed() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;

    let created = client
        .create_document(CreateDocumentRequest {
            metadata: Some(DocumentMetadata {
                filename: "../../etc/field-guide.md".into(),
                labels: vec!["birds".into(), "guides".into()],
                ..Default::default()
            }),
            content: MARKDOWN.as_bytes().to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    assert_eq!(created.state(), DocumentState::Queued);
    assert_eq!(created.filename, "field-guide.md", "path parts are stripped");
    assert_eq!(created.format, "markdown");
    assert_eq!(created.size_bytes, MARKDOWN.len() as i64);

    let ready = wait_for_state(&client, &created.id, DocumentState::Ready, WAIT).await;
    assert_eq!(ready.title, "Field Guide");
    assert_eq!(ready.chunks, 3);
    for stage in ["PARSE", "CHUNK", "EMBED", "INDEX"] {
        assert!(
            ready.stage_millis.contains_key(stage),
            "{stage} duration missing: {:?}",
            ready.stage_millis
        );
    }
    let chunks = client
        .list_chunks(ListChunksRequest {
            document_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .chunks;
    let paths: Vec<Vec<String>> = chunks.iter().map(|c| c.section_path.clone()).collect();
    assert_eq!(
        paths,
        [
            vec!["Field Guide".to_string()],
            vec!["Field Guide".into(), "Herons".into()],
            vec!["Field Guide".into(), "Rails".into()]
        ]
    );
    assert!(chunks[1].text.contains("grey heron"));

    let events = client
        .list_document_events(ListDocumentEventsRequest {
            document_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let steps: Vec<(i32, i32)> = events.iter().map(|e| (e.stage, e.kind)).collect();
    use folio_proto::v1::{EventKind as K, Stage as S};
    assert_eq!(
        steps,
        [
            (S::Store as i32, K::Completed as i32),
            (S::Parse as i32, K::Started as i32),
            (S::Parse as i32, K::Completed as i32),
            (S::Chunk as i32, K::Completed as i32),
            (S::Embed as i32, K::Completed as i32),
            (S::Index as i32, K::Completed as i32),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id && w[0].percent <= w[1].percent));
    assert_eq!(events.last().unwrap().state(), DocumentState::Ready);

    // The same bytes again: the existing document, marked as a duplicate.
    let again = client
        .create_document(CreateDocumentRequest {
            metadata: metadata("copy.md"),
            content: MARKDOWN.as_bytes().to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.id, created.id);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_invalid_argument_and_leave_nothing_behind() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_MAX_UPLOAD_BYTES", "1000");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;

    let cases: Vec<(Option<DocumentMetadata>, Vec<u8>, &str)> = vec![
        (metadata("empty.txt"), Vec::new(), "content"),
        (metadata("big.txt"), vec![b'a'; 1001], "content"),
        (metadata("image.txt"), b"GIF89a rest".to_vec(), "content"),
        (metadata("\u{0}/\n"), b"text".to_vec(), "metadata.filename"),
        (None, b"text".to_vec(), "metadata"),
    ];
    for (metadata, content, field) in cases {
        let status = client
            .create_document(CreateDocumentRequest { metadata, content })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(violated_fields(&status), [field]);
    }
    let status = client.create_document(CreateDocumentRequest {
        metadata: metadata("image.gif"),
        content: b"GIF89a rest".to_vec(),
    });
    assert!(status.await.unwrap_err().message().contains("supported: plain text"));

    // A stream whose first message is not the metadata.
    let requests = vec![UploadDocumentRequest {
        part: Some(Part::Chunk(b"bytes first".to_vec())),
    }];
    let status = client.upload_document(tokio_stream::iter(requests)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let listed = client
        .list_documents(ListDocumentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .documents;
    assert!(listed.is_empty(), "no row was left: {listed:?}");
    let blob_dir = env.vars["FOLIO_BLOB_URL"].strip_prefix("file://").unwrap().to_owned();
    let leftovers: Vec<_> = walk(std::path::Path::new(&blob_dir));
    assert!(leftovers.is_empty(), "no blob was left: {leftovers:?}");

    api.stop().await.unwrap();
    env.cleanup().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_upload_with_an_idempotency_key_is_answered_once_and_others_see_not_found() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let text: Vec<u8> = (0..2000)
        .flat_map(|i| format!("line {i} of a long text\n\n").into_bytes())
        .collect();
    let upload = || {
        let mut requests = vec![UploadDocumentRequest {
            part: Some(Part::Metadata(DocumentMetadata {
                filename: "long.txt".into(),
                idempotency_key: "upload-1".into(),
                ..Default::default()
            })),
        }];
        requests.extend(text.chunks(7000).map(|c| UploadDocumentRequest {
            part: Some(Part::Chunk(c.to_vec())),
        }));
        tokio_stream::iter(requests)
    };
    let first = client.upload_document(upload()).await.unwrap().into_inner().document.unwrap();
    let second = client.upload_document(upload()).await.unwrap().into_inner().document.unwrap();
    assert_eq!(first.id, second.id);
    assert!(!second.duplicate, "an idempotent replay is the same answer, not a duplicate");
    assert_eq!(first.size_bytes, text.len() as i64);

    let stranger = api.register_member().await;
    let mut theirs = documents_as(&api, &stranger.access_token).await;
    let status = theirs.get_document(GetDocumentRequest { id: first.id.clone() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = theirs
        .delete_document(DeleteDocumentRequest { id: first.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        theirs
            .list_documents(ListDocumentsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .documents
            .is_empty()
    );
    // An admin sees everyone's.
    let admin = api.login(folio_tests::ADMIN_EMAIL, folio_tests::ADMIN_PASSWORD).await;
    let all = documents_as(&api, &admin.access_token)
        .await
        .list_documents(ListDocumentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .documents;
    assert_eq!(all.len(), 1);

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_retry_and_delete() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let document = client
        .create_document(CreateDocumentRequest {
            metadata: metadata("notes.txt"),
            content: b"some notes worth keeping".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    // No worker yet: the document waits QUEUED and cancels at once.
    let cancelled = client
        .cancel_document(CancelDocumentRequest { id: document.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state(), DocumentState::Cancelled);

    let worker = env.spawn_worker();
    let retried = client
        .retry_document(RetryDocumentRequest { id: document.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((retried.state(), retried.attempt), (DocumentState::Queued, 2));
    let ready = wait_for_state(&client, &document.id, DocumentState::Ready, WAIT).await;
    assert_eq!(ready.attempt, 2);
    let status = client
        .cancel_document(CancelDocumentRequest { id: document.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = client
        .retry_document(RetryDocumentRequest { id: document.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    client
        .delete_document(DeleteDocumentRequest { id: document.id.clone() })
        .await
        .unwrap();
    let status = client
        .get_document(GetDocumentRequest { id: document.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let blob_dir = env.vars["FOLIO_BLOB_URL"].strip_prefix("file://").unwrap().to_owned();
    assert!(walk(std::path::Path::new(&blob_dir)).is_empty(), "blobs removed with the document");

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

async fn download(
    client: &mut DocumentServiceClient<Authed>,
    id: &str,
    format: folio_proto::v1::DownloadFormat,
) -> Result<(String, Vec<u8>), tonic::Status> {
    let mut stream = client
        .download_document(folio_proto::v1::DownloadDocumentRequest {
            id: id.into(),
            format: format as i32,
        })
        .await?
        .into_inner();
    let mut content_type = String::new();
    let mut data = Vec::new();
    while let Some(part) = futures_util::StreamExt::next(&mut stream).await {
        let part = part?;
        if content_type.is_empty() {
            content_type = part.content_type;
        }
        data.extend(part.data);
    }
    Ok((content_type, data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_and_stats() {
    use folio_proto::v1::DownloadFormat as F;
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let document = client
        .create_document(CreateDocumentRequest {
            metadata: metadata("guide.md"),
            content: MARKDOWN.as_bytes().to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    let status = download(&mut client, &document.id, F::Markdown).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "not parsed yet");
    let (content_type, original) = download(&mut client, &document.id, F::Original).await.unwrap();
    assert_eq!((content_type.as_str(), original.as_slice()), ("text/markdown", MARKDOWN.as_bytes()));

    let worker = env.spawn_worker();
    wait_for_state(&client, &document.id, DocumentState::Ready, WAIT).await;
    let (_, markdown) = download(&mut client, &document.id, F::Markdown).await.unwrap();
    let markdown = String::from_utf8(markdown).unwrap();
    assert!(markdown.starts_with("# Field Guide\n\n"), "{markdown}");
    assert!(markdown.contains("## Herons\n\nThe grey heron"), "{markdown}");
    let (_, text) = download(&mut client, &document.id, F::Text).await.unwrap();
    assert!(String::from_utf8(text).unwrap().contains("The water rail is heard"));
    let (content_type, json) = download(&mut client, &document.id, F::Json).await.unwrap();
    assert_eq!(content_type, "application/json");
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["sections"][1]["path"], serde_json::json!(["Field Guide", "Herons"]));
    assert_eq!(json["chunks"].as_array().unwrap().len(), 3);

    let stats = client
        .get_document_stats(folio_proto::v1::GetDocumentStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stats.total_documents, stats.total_bytes, stats.total_chunks),
        (1, MARKDOWN.len() as i64, 3)
    );
    assert_eq!(stats.states[0].state(), DocumentState::Ready);
    let stages: Vec<_> = stats.stages.iter().map(|s| s.stage()).collect();
    use folio_proto::v1::Stage as S;
    assert_eq!(stages, [S::Chunk, S::Embed, S::Index, S::Parse]);
    assert!(stats.stages.iter().all(|s| s.samples == 1 && s.p95_ms >= s.p50_ms));
    let status = client
        .get_document_stats(folio_proto::v1::GetDocumentStatsRequest {
            owner_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_retries_with_backoff_then_fails_and_a_retry_recovers() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let document = client
        .create_document(CreateDocumentRequest {
            metadata: metadata("notes.txt"),
            content: b"notes that will go missing for a while".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    // The blob store loses the bytes: every try fails transiently.
    let blob_dir = env.vars["FOLIO_BLOB_URL"].strip_prefix("file://").unwrap().to_owned();
    let blob = walk(std::path::Path::new(&blob_dir)).pop().unwrap();
    let saved = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();

    let worker = env.spawn_worker();
    let waiting = wait_for_state(&client, &document.id, DocumentState::RetryWait, WAIT).await;
    assert_eq!((waiting.try_number, waiting.max_tries), (1, 3));
    assert!(waiting.will_retry && waiting.next_retry_at.is_some());
    assert_eq!(waiting.error_code, "UNAVAILABLE");

    let failed = wait_for_state(&client, &document.id, DocumentState::Failed, WAIT).await;
    assert_eq!((failed.try_number, failed.will_retry), (3, false));
    let events = client
        .list_document_events(ListDocumentEventsRequest {
            document_id: document.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    use folio_proto::v1::EventKind as K;
    let retries = events.iter().filter(|e| e.kind() == K::RetryScheduled).count();
    assert_eq!(retries, 2, "tries 1 and 2 scheduled a retry");
    assert_eq!(events.last().unwrap().kind(), K::EventFailed);

    std::fs::write(&blob, saved).unwrap();
    client
        .retry_document(RetryDocumentRequest { id: document.id.clone() })
        .await
        .unwrap();
    let ready = wait_for_state(&client, &document.id, DocumentState::Ready, WAIT).await;
    assert_eq!((ready.attempt, ready.error_code.as_str()), (2, ""));

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_s3_blob_store_documents_live_in_the_bucket_and_nothing_is_left_behind() {
    let s3 = S3Server::start().await;
    let mut env = TestEnv::new().await;
    for (name, value) in s3.vars("folio") {
        env.set(name, value);
    }
    // Past object_store's 10 MiB part size, so the refused upload below has
    // begun a multipart upload that must be aborted.
    env.set("FOLIO_MAX_UPLOAD_BYTES", (11 << 20).to_string());
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;

    // A real PDF: stored in the bucket, parsed by the worker from there, its
    // parse result written there, and both read back by DownloadDocument.
    let pdf = std::fs::read(documents_dir().join("bash.pdf")).expect("bash.pdf (scripts/test installs it)");
    let document = upload_ready(&mut client, "bash.pdf", &pdf, Duration::from_secs(120)).await;
    assert!(document.chunks > 0 && document.pages > 0, "{document:?}");
    let keys = s3.keys("folio/").await;
    let original = keys
        .iter()
        .find(|k| k.starts_with("folio/documents/") && k.ends_with(&document.id))
        .unwrap_or_else(|| panic!("the original in the bucket: {keys:?}"));
    assert!(
        keys.iter().any(|k| k.starts_with(&format!("folio/parsed/{}/", document.id))),
        "the parse result in the bucket: {keys:?}"
    );
    assert_eq!(s3.size(original).await, Some(pdf.len() as u64), "the bucket holds the upload");
    let (_, downloaded) = download(&mut client, &document.id, DownloadFormat::Original).await.unwrap();
    assert!(downloaded == pdf, "DownloadDocument returns the uploaded bytes");
    let (_, markdown) = download(&mut client, &document.id, DownloadFormat::Markdown).await.unwrap();
    assert!(String::from_utf8_lossy(&markdown).contains("GNU Bourne-Again SHell"));

    // Over the limit after a multipart upload began: refused, with no object
    // and no unfinished multipart upload left in the bucket.
    let mut requests = vec![UploadDocumentRequest {
        part: Some(Part::Metadata(metadata("big.txt").unwrap())),
    }];
    requests.extend((0..12).map(|_| UploadDocumentRequest {
        part: Some(Part::Chunk(vec![b'a'; 1 << 20])),
    }));
    let status = client.upload_document(tokio_stream::iter(requests)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(s3.keys("folio/").await, keys, "nothing new in the bucket");
    assert_eq!(s3.pending_multipart_uploads().await, Vec::<String>::new());

    // Deleting the document deletes its blobs.
    client
        .delete_document(DeleteDocumentRequest { id: document.id.clone() })
        .await
        .unwrap();
    assert_eq!(s3.keys("folio/").await, Vec::<String>::new());

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_cannot_be_published_is_requeued_after_a_pause_not_at_full_speed() {
    use folio_proto::v1::{EventKind, Stage};
    let mut env = TestEnv::new().await;
    // The first retry would wait 1.5 s: a requeue waits that long too.
    env.set("FOLIO_RETRY_BASE_MS", "1500");
    let api = env.spawn_api().await;
    // Every try fails transiently, at once: the worker reads blobs from an
    // empty store.
    let empty = std::env::temp_dir().join(format!("folio-empty-{}", env.database));
    env.set("FOLIO_BLOB_URL", format!("file://{}", empty.display()));
    let worker = env.spawn_worker();
    // Once the worker has declared its topology and consumes, the retry
    // queue for 1.5 s goes: a retry's publish is unroutable, so it fails.
    let process_queue = env.topology().process_queue();
    folio_tests::eventually(Duration::from_secs(20), "the worker consuming", || async {
        (folio_tests::helpers::passive_counts(&folio_tests::amqp_url(), &process_queue)
            .await
            .1
            == 1)
            .then_some(())
    })
    .await;
    let (connection, channel) = folio_tests::publisher().await;
    let retry_queue = format!("{}.retry.1500ms", env.vars["FOLIO_AMQP_PREFIX"]);
    channel.queue_delete(retry_queue.as_str().into(), Default::default()).await.unwrap();
    let _ = connection.close(200, "done".into()).await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let document = folio_tests::create_document(&mut client, "notes.txt", &[], b"notes the worker cannot read").await;

    // Each requeue comes back as the same try and starts it again: four
    // starts, each at least the pause after the one before.
    let starts = folio_tests::helpers::eventually_every(
        Duration::from_millis(500),
        Duration::from_secs(60),
        "four starts of try 1",
        || async {
            let starts: Vec<i64> = folio_tests::document_events(&client, &document.id)
                .await
                .iter()
                .filter(|e| e.stage() == Stage::Parse && e.kind() == EventKind::Started)
                .map(|e| {
                    let at = e.created_at.as_ref().unwrap();
                    at.seconds * 1000 + i64::from(at.nanos) / 1_000_000
                })
                .collect();
            (starts.len() >= 4).then_some(starts)
        },
    )
    .await;
    for pair in starts.windows(2) {
        assert!(pair[1] - pair[0] >= 1400, "requeued after {} ms: {starts:?}", pair[1] - pair[0]);
    }
    let waiting = folio_tests::wait_for_state(&client, &document.id, DocumentState::RetryWait, WAIT).await;
    assert_eq!(waiting.try_number, 1, "a requeue is not a new try: {waiting:?}");
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&empty);
    env.cleanup().await;
}

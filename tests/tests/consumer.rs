//! The consumer under the broker's rules: a job longer than the broker's
//! consumer timeout is handed over to its document's lease (acked early)
//! instead of having its channel closed under it, and the lease, not the
//! broker, brings it back when its worker dies; and a worker never runs more jobs at once than
//! its prefetch, also while the jobs of a dropped connection are still going.
//!
//! The model server is the OpenAI-compatible fake (`folio_tests::fake_model`),
//! answering late so that jobs last; the broker is a RabbitMQ node of the
//! test's own where its settings matter, else the machine's behind a proxy
//! the test cuts.

use std::{sync::atomic::Ordering, time::Duration};

use folio_proto::v1::{DocumentState, EventKind, document_service_client::DocumentServiceClient};
use folio_tests::{
    TcpProxy, TestEnv,
    fake_model::{Fake, Reply, embeddings},
    nodes::RabbitNode,
};

/// A model server that answers every request after `delay`.
async fn late_embedder(delay: Duration) -> std::sync::Arc<Fake> {
    Fake::start(move |_, body| Reply::Late(delay, embeddings(body, 384))).await
}

/// Waits until the broker sees no consumer on `queue` (a killed worker's
/// connection is gone), then says how many messages it holds ready.
async fn ready_once_unconsumed(node: &RabbitNode, queue: &str) -> u32 {
    folio_tests::eventually(Duration::from_secs(30), "no consumer left", || async {
        let (ready, consumers) = node.ready_and_consumers(queue).await;
        (consumers == 0).then_some(ready)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_the_consumer_timeout_is_handed_over_to_its_lease_and_runs_once() {
    let node = RabbitNode::start("consumer_timeout = 4000").await;
    let fake = late_embedder(Duration::from_secs(120)).await;
    let mut env = TestEnv::new().await;
    env.set("AMQP_URL", node.url());
    fake.serve(&mut env);
    env.set("FOLIO_CONSUMER_TIMEOUT_SECS", "4");
    env.set("FOLIO_HEARTBEAT_SECS", "1");
    env.set("FOLIO_LEASE_SECS", "2");
    let api = env.spawn_api().await;
    let worker = env.start_process("folio-worker", &[], "consuming").await;
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let document = folio_tests::create_document(&mut client, "dunlin.txt", &[], &folio_tests::prose(60)).await;

    // The job embeds (the model server answers after two minutes); half the
    // consumer timeout after its delivery the worker acks it, handing the
    // document over to its lease.
    folio_tests::eventually(Duration::from_secs(30), "the job embedding", || async {
        (fake.in_flight.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Killed now, the worker leaves the broker nothing to deliver again: the
    // job was acked (without the hand-over it would be ready again at once).
    folio_tests::helpers::sigkill(&worker);
    let _ = worker.wait_with_output().await;
    let queue = env.topology().process_queue();
    assert_eq!(
        ready_once_unconsumed(&node, &queue).await,
        0,
        "the broker gave the job back: it was never acked"
    );

    // The lease brings the document back: a worker that embeds at once
    // finishes it as try 2, the model server having seen one request.
    env.set("FOLIO_EMBEDDER", "hash");
    let worker = env.spawn_worker();
    let ready = folio_tests::wait_for_state(&client, &document.id, DocumentState::Ready, Duration::from_secs(60)).await;
    assert_eq!(ready.try_number, 2, "{ready:?}");
    assert_eq!(fake.requests(), 1);
    let events = folio_tests::document_events(&client, &document.id).await;
    assert!(
        events
            .iter()
            .any(|e| e.kind() == EventKind::RetryScheduled && e.message.contains("lease ran out")),
        "{events:?}"
    );
    node.queue_holds(&queue, (0, 0)).await;
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_prefetch_count_of_jobs_runs_also_across_a_reconnect() {
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let fake = late_embedder(Duration::from_secs(4)).await;
    let mut env = TestEnv::new().await;
    fake.serve(&mut env);
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

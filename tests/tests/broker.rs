//! The outbox against a broker that goes away, restarts and refuses: every
//! confirmed publish survives a restart, what was not confirmed stays in the
//! outbox and is sent again, a nack keeps the row pending. The broker is a
//! RabbitMQ node of the test's own, so it can be stopped and reconfigured.

use std::time::Duration;

use diesel_async::RunQueryDsl as _;
use folio_db::models::{outbox, ping};
use folio_proto::v1::{DocumentState, PingWorkersRequest, document_service_client::DocumentServiceClient};
use folio_tests::{ApiHandle, Authed, TestEnv, nodes::RabbitNode};

/// A test env on `broker`, an api-server and a member's document client.
/// The relay may fill the queue a thousand deep: these tests are about what
/// the broker does with publishes, not about the fair schedule holding them.
async fn on(broker: &RabbitNode) -> (TestEnv, ApiHandle, DocumentServiceClient<Authed>) {
    let mut env = TestEnv::new().await;
    env.set("AMQP_URL", broker.url());
    env.set("FOLIO_SCHEDULER_AHEAD", "1000");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    (env, api, client)
}

fn note(index: usize) -> Vec<u8> {
    let mut bytes = format!("Note {index}\n\n").into_bytes();
    bytes.extend(folio_tests::prose(40));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_publishes_survive_a_broker_restart_and_uploads_made_while_it_is_down_are_all_processed_after() {
    let mut broker = RabbitNode::start("").await;
    let (mut env, api, mut client) = on(&broker).await;
    let pool = env.pool();

    // No worker yet: twenty jobs confirmed by the broker, sitting in its queue.
    let mut ids = Vec::new();
    for index in 0..20 {
        ids.push(
            folio_tests::create_document(&mut client, &format!("before-{index}.txt"), &[], &note(index))
                .await
                .id,
        );
    }
    folio_tests::outbox_drained(&pool).await;
    let queue = env.topology().process_queue();
    broker.queue_holds(&queue, (20, 0)).await;
    broker.restart().await;
    // The confirmed jobs survived the restart.
    broker.queue_holds(&queue, (20, 0)).await;

    // The broker goes away: a hundred uploads are answered, their jobs wait
    // in the outbox unsent.
    broker.stop().await;
    for index in 0..100 {
        ids.push(
            folio_tests::create_document(&mut client, &format!("during-{index}.txt"), &[], &note(100 + index))
                .await
                .id,
        );
    }
    let mut conn = pool.get().await.unwrap();
    assert_eq!(outbox::count_unsent(&mut conn).await.unwrap(), 100);
    drop(conn);

    // It comes back: the relay sends them, a worker runs all 120.
    broker.restart().await;
    let worker = env.spawn_worker();
    for id in &ids {
        folio_tests::wait_for_state(&client, id, DocumentState::Ready, Duration::from_secs(120)).await;
    }
    folio_tests::outbox_drained(&pool).await;
    broker.queue_holds(&queue, (0, 0)).await;
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[derive(diesel::QueryableByName, Debug)]
struct Pending {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    publish_attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    last_error: Option<String>,
}

/// Waits for an unsent outbox row whose publish was tried at least `tries`
/// times, and returns it.
async fn unsent_row_tried(pool: &folio_db::Pool, tries: i32, what: &str) -> Pending {
    folio_tests::eventually(Duration::from_secs(30), what, || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            let rows: Vec<Pending> = diesel::sql_query("SELECT publish_attempts, last_error FROM outbox WHERE sent_at IS NULL")
                .load(&mut conn)
                .await
                .ok()?;
            rows.into_iter().find(|row| row.publish_attempts >= tries)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_nack_keeps_the_outbox_row_pending_until_the_queue_takes_it() {
    let broker = RabbitNode::start("").await;
    let (mut env, api, mut client) = on(&broker).await;
    let pool = env.pool();

    // The job queue is full and says so: past one message (a quorum queue
    // takes the message that reaches its limit) RabbitMQ nacks every publish.
    let queue = env.topology().process_queue();
    let pattern = format!("^{}$", queue.replace('.', "\\."));
    broker
        .ctl(&[
            "set_policy",
            "--apply-to",
            "queues",
            "full",
            &pattern,
            r#"{"max-length":1,"overflow":"reject-publish"}"#,
        ])
        .await;
    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(
            folio_tests::create_document(&mut client, &format!("refused-{index}.txt"), &[], &note(index))
                .await
                .id,
        );
    }
    let pending = unsent_row_tried(&pool, 2, "the publish nacked twice").await;
    assert!(pending.last_error.as_deref().is_some_and(|e| e.contains("nack")), "{pending:?}");

    // Room again: the row is sent and the document processed.
    broker.ctl(&["clear_policy", "full"]).await;
    let worker = env.spawn_worker();
    for id in &ids {
        folio_tests::wait_for_state(&client, id, DocumentState::Ready, Duration::from_secs(60)).await;
    }
    folio_tests::outbox_drained(&pool).await;
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_broker_never_confirms_fails_after_the_confirm_timeout_and_is_sent_again() {
    let broker = RabbitNode::start("").await;
    let (mut env, api, mut client) = on(&broker).await;
    let pool = env.pool();
    let mut system = api.system().await;
    // The broker stalls with the relay's connection open: no confirm comes.
    // folio's own job (a ping) is published at once, and given up.
    broker.freeze();
    let ping = system
        .ping_workers(PingWorkersRequest {
            wait: Some(prost_types::Duration { seconds: 0, nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner();
    let pending = unsent_row_tried(&pool, 1, "the publish given up as unconfirmed").await;
    assert!(pending.last_error.as_deref().is_some_and(|e| e.contains("confirm")), "{pending:?}");
    // A document uploaded meanwhile waits in the outbox for its release,
    // which needs the queue's depth from the stalled broker.
    let document = folio_tests::create_document(&mut client, "stalled.txt", &[], &note(7)).await;
    broker.thaw();
    let worker = env.spawn_worker();
    folio_tests::wait_for_state(&client, &document.id, DocumentState::Ready, Duration::from_secs(90)).await;
    let ping_id = ping.ping_id.parse().unwrap();
    folio_tests::eventually(Duration::from_secs(30), "the ping sent again and received", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            ping::find(&mut conn, ping_id).await.ok()?.filter(|p| p.received_at.is_some())
        }
    })
    .await;
    folio_tests::outbox_drained(&pool).await;
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

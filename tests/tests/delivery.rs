//! Delivery semantics: the outbox holds jobs while RabbitMQ is away, a job
//! delivered twice has its effect once, workers reconnect, and jobs that cannot
//! run end in the dead-letter queue.

use std::time::Duration;

use diesel::QueryDsl as _;
use diesel_async::RunQueryDsl as _;
use folio_core::queue::{self, EncodedJob, Topology};
use folio_db::{
    models::{dead_letter, outbox, ping},
    schema::processed_jobs,
};
use folio_proto::v1::{GetInfoRequest, PingWorkersRequest};
use folio_tests::{TcpProxy, TestEnv, eventually, health_status};
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;

const NO_WAIT: Option<prost_types::Duration> = Some(prost_types::Duration { seconds: 0, nanos: 0 });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_waits_in_the_outbox_while_rabbitmq_is_cut_and_is_delivered_after() {
    let mut env = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let worker = env.spawn_worker();
    env.set("AMQP_URL", proxy.url_through(&folio_tests::amqp_url()));
    let api = env.spawn_api().await;
    let mut system = api.system().await;
    let pool = env.pool();

    proxy.cut();
    // The health poller has seen the broker go: its own entry says so.
    eventually(
        Duration::from_secs(10),
        "rabbitmq's health entry NOT_SERVING while it is cut",
        || {
            let url = api.url();
            async move { (health_status(&url, "folio.dependency.rabbitmq").await == Some(ServingStatus::NotServing)).then_some(()) }
        },
    )
    .await;
    // Readiness means "can do its job": the outbox takes the work, so the
    // server and its services stay SERVING, degraded.
    for service in ["", "folio.v1.DocumentService", "folio.v1.SystemService"] {
        assert_eq!(
            health_status(&api.url(), service).await,
            Some(ServingStatus::Serving),
            "{service:?}"
        );
    }
    let info = system.get_info(GetInfoRequest {}).await.unwrap().into_inner();
    assert!(info.serving && info.degraded, "{info:?}");
    assert!(!info.dependencies.iter().find(|d| d.name == "rabbitmq").unwrap().up);

    let response = system
        .ping_workers(PingWorkersRequest { wait: NO_WAIT })
        .await
        .unwrap()
        .into_inner();
    assert!(!response.received);
    let ping_id: Uuid = response.ping_id.parse().unwrap();
    // The relay publishes only over a connection, and with the old one gone it
    // must open a new one, then claim the unsent rows. Wait until it has tried
    // to connect after the row committed and been turned away: then the row
    // stays unsent because RabbitMQ is away, not because the relay had not
    // looked yet.
    proxy.wait_for_refused_connection().await;
    let mut conn = pool.get().await.unwrap();
    assert_eq!(outbox::count_unsent(&mut conn).await.unwrap(), 1);
    assert!(ping::find(&mut conn, ping_id).await.unwrap().unwrap().received_at.is_none());

    proxy.restore();
    let received = eventually(Duration::from_secs(20), "the ping after RabbitMQ returned", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            ping::find(&mut conn, ping_id).await.ok()?.filter(|p| p.received_at.is_some())
        }
    })
    .await;
    assert_eq!(received.receipts, 1);
    folio_tests::outbox_drained(&pool).await;
    eventually(Duration::from_secs(10), "rabbitmq's health entry SERVING once it is back", || {
        let url = api.url();
        async move { (health_status(&url, "folio.dependency.rabbitmq").await == Some(ServingStatus::Serving)).then_some(()) }
    })
    .await;
    let info = system.get_info(GetInfoRequest {}).await.unwrap().into_inner();
    assert!(info.serving && !info.degraded, "{info:?}");
    drop(conn);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_published_twice_has_its_effect_once() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let pool = env.pool();

    // A ping committed without its outbox row, then its job published twice by
    // hand: what a relay does when the confirm arrived but marking it sent failed.
    let ping_id = Uuid::now_v7();
    let mut conn = pool.get().await.unwrap();
    ping::create(&mut conn, ping_id).await.unwrap();
    let job = EncodedJob::ping(ping_id);
    let topology = env.topology();
    let (connection, channel) = folio_tests::publisher().await;
    for _ in 0..2 {
        let confirm = queue::publish(&channel, &topology.jobs_exchange(), queue::PROCESS_KEY, job.job_id, &job.payload, 1)
            .await
            .unwrap();
        queue::confirmed(confirm).await.unwrap();
    }

    let worker = env.spawn_worker();
    eventually(Duration::from_secs(10), "both deliveries consumed", || {
        let env = &env;
        async move { (folio_tests::ready_messages(&env.topology().process_queue()).await == 0).then_some(()) }
    })
    .await;
    // Taken off the queue is not yet run: wait for the effect itself, or a
    // worker stopped between the two would leave nothing to count.
    eventually(Duration::from_secs(10), "the ping's receipt", || {
        let pool = &pool;
        async move {
            let mut conn = pool.get().await.ok()?;
            let stored = ping::find(&mut conn, ping_id).await.ok()??;
            (stored.receipts >= 1).then_some(())
        }
    })
    .await;
    // The second delivery may still be in flight; stopping drains it.
    worker.stop().await.unwrap();
    let stored = ping::find(&mut conn, ping_id).await.unwrap().unwrap();
    assert_eq!(stored.receipts, 1, "the effect ran more than once");
    let processed: i64 = processed_jobs::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(processed, 1);
    assert_eq!(folio_tests::ready_messages(&topology.dead_letter()).await, 0);
    assert!(dead_letter::all(&mut conn).await.unwrap().is_empty(), "nothing dead-lettered");
    let _ = connection.close(200, "done".into()).await;
    drop(conn);

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reconnects_after_its_rabbitmq_connection_drops() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let mut worker_env_vars = env.vars.clone();
    worker_env_vars.insert("AMQP_URL".into(), proxy.url_through(&folio_tests::amqp_url()));
    let worker_config = folio_core::config::Config::from_lookup(|k| worker_env_vars.get(k).cloned()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(folio_worker::run(worker_config, async {
        let _ = stopped.await;
    }));
    let mut system = api.system().await;
    let first = system
        .ping_workers(PingWorkersRequest {
            wait: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.received);

    proxy.cut();
    let during = system
        .ping_workers(PingWorkersRequest { wait: NO_WAIT })
        .await
        .unwrap()
        .into_inner();
    // Restore the link only once the worker has noticed the drop and tried to
    // reconnect while cut, so what follows is a reconnect, not a connection
    // that never knew it was cut.
    proxy.wait_for_refused_connection().await;
    proxy.restore();

    let pool = env.pool();
    let ping_id: Uuid = during.ping_id.parse().unwrap();
    let received = eventually(Duration::from_secs(20), "the ping sent while the worker was cut off", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            ping::find(&mut conn, ping_id).await.ok()?.filter(|p| p.received_at.is_some())
        }
    })
    .await;
    assert_eq!(received.receipts, 1);
    assert_eq!(
        received.worker_id.unwrap().to_string(),
        first.worker_id,
        "the same worker reconnected"
    );

    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_run_is_dead_lettered_not_retried() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let topology = env.topology();

    // A ping for a ping that does not exist is a permanent failure, and so is a
    // body that is not a job at all.
    let orphan = EncodedJob::ping(Uuid::now_v7());
    let (connection, channel) = folio_tests::publisher().await;
    for payload in [orphan.payload.as_slice(), b"\xff\xffnot protobuf"] {
        let confirm = queue::publish(&channel, &topology.jobs_exchange(), queue::PROCESS_KEY, orphan.job_id, payload, 1)
            .await
            .unwrap();
        queue::confirmed(confirm).await.unwrap();
    }
    // The worker reads the dead-letter queue too and records what it finds.
    let pool = env.pool();
    let letters = eventually(Duration::from_secs(10), "two dead letters recorded", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            let letters = dead_letter::all(&mut conn).await.ok()?;
            (letters.len() == 2).then_some(letters)
        }
    })
    .await;
    let mut found: Vec<_> = letters.iter().map(|l| (l.kind.as_str(), l.reason.as_str(), l.job_id)).collect();
    found.sort();
    assert_eq!(
        found,
        [("ping", "rejected", Some(orphan.job_id)), ("undecodable", "rejected", None)]
    );
    assert_eq!(letters.iter().find(|l| l.kind == "ping").unwrap().payload, orphan.payload);
    for queue in [topology.process_queue(), topology.dead_letter()] {
        assert_eq!(folio_tests::ready_messages(&queue).await, 0, "{queue}");
    }

    let _ = connection.close(200, "done".into()).await;
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_queue_holds_a_job_for_its_delay_then_returns_it_to_the_job_queue() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let topology = env.topology();
    let delay = topology.retry_delay(1).expect("a retry after the first attempt");
    assert_eq!(delay, Duration::from_millis(200));
    assert_eq!(topology.retry_delay(2), Some(Duration::from_millis(800)));
    assert_eq!(topology.retry_delay(3), None, "FOLIO_MAX_ATTEMPTS=3 allows two retries");

    let job = EncodedJob::ping(Uuid::now_v7());
    let (connection, channel) = folio_tests::publisher().await;
    let confirm = queue::publish(
        &channel,
        &topology.retry_exchange(),
        &Topology::retry_key(delay),
        job.job_id,
        &job.payload,
        2,
    )
    .await
    .unwrap();
    queue::confirmed(confirm).await.unwrap();

    let returned = eventually(Duration::from_secs(10), "the job back on the job queue", || {
        let channel = channel.clone();
        let queue = topology.process_queue();
        async move { channel.basic_get(queue.into(), Default::default()).await.ok()? }
    })
    .await;
    assert_eq!(returned.delivery.data, job.payload);
    assert_eq!(queue::delivery_attempt(&returned.delivery.properties), 2);
    returned.delivery.acker.ack(Default::default()).await.unwrap();

    // An unroutable publish is a failure, not a success.
    let confirm = queue::publish(&channel, &topology.jobs_exchange(), "no-such-route", job.job_id, &job.payload, 1)
        .await
        .unwrap();
    assert!(matches!(queue::confirmed(confirm).await, Err(queue::PublishError::Returned(_))));

    let _ = connection.close(200, "done".into()).await;
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettering_loses_nothing_while_the_dead_letter_queue_is_briefly_gone() {
    // RabbitMQ retries a dead letter it could not route after its publisher
    // confirm timeout (3 min by default): this node retries after 2 s.
    let node = folio_tests::nodes::RabbitNode::start_with("", "{dead_letter_worker_publisher_confirm_timeout, 2000}").await;
    let mut env = TestEnv::new().await;
    env.set("AMQP_URL", node.url());
    let api = env.spawn_api().await;
    let topology = env.topology();
    let connection = lapin::Connection::connect(&node.url(), Default::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    // The dead-letter queue is gone (no worker runs to declare it again).
    channel
        .queue_delete(topology.dead_letter().into(), Default::default())
        .await
        .unwrap();
    // A job is rejected to the dead-letter exchange, which routes nowhere now:
    // the process queue (at-least-once dead-lettering) keeps it.
    let orphan = EncodedJob::ping(Uuid::now_v7());
    let confirm = queue::publish(
        &channel,
        &topology.jobs_exchange(),
        queue::PROCESS_KEY,
        orphan.job_id,
        &orphan.payload,
        1,
    )
    .await
    .unwrap();
    queue::confirmed(confirm).await.unwrap();
    let delivery = eventually(Duration::from_secs(10), "the job", || async {
        channel
            .basic_get(topology.process_queue().into(), Default::default())
            .await
            .ok()
            .flatten()
    })
    .await;
    delivery
        .acker
        .reject(lapin::options::BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;

    // A worker declares the queue again and reads it: the dead letter arrives.
    let worker = env.spawn_worker();
    let pool = env.pool();
    let letters = eventually(Duration::from_secs(120), "the dead letter recorded", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            let letters = dead_letter::all(&mut conn).await.ok()?;
            (!letters.is_empty()).then_some(letters)
        }
    })
    .await;
    assert_eq!(
        letters.iter().map(|l| (l.job_id, l.reason.as_str())).collect::<Vec<_>>(),
        [(Some(orphan.job_id), "rejected")]
    );
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

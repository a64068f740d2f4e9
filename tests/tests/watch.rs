//! Live status streams end to end: WatchDocument and WatchDocuments through the
//! real api-server, with events committed by real workers (or, where thousands
//! are needed fast, by the same lifecycle transitions + `announce` the worker
//! calls), Postgres, RabbitMQ and Redis.
//!
//! Over 500 lines on purpose: one file for the live-status surface (the
//! stream, the hub and the settled horizon), whose tests share their set-up.

use std::{collections::HashSet, time::Duration};

use diesel_async::AsyncConnection as _;
use folio_core::cache::Cache;
use folio_db::{
    documents::{
        self,
        lifecycle::{self, LifecycleError, Note, Try},
        state::Stage,
    },
    models::document_event::DocumentEvent as StoredEvent,
};
use folio_proto::v1::{
    DocumentEvent, DocumentState, GetInfoRequest, ListDocumentEventsRequest, LogoutRequest, WatchDocumentRequest, WatchDocumentsRequest,
    WatchResponse, document_service_client::DocumentServiceClient, watch_response::Item,
};
use folio_tests::helpers::HAND_LEASE;
use folio_tests::{ApiHandle, Authed, Bearer, TcpProxy, TestEnv, eventually, wait_for_state};
use futures_util::{FutureExt as _, StreamExt as _};
use tonic::{Code, Streaming, service::interceptor::InterceptedService};
use tonic_types::StatusExt as _;
use uuid::Uuid;

const MARKDOWN: &str = "# Tide Tables\n\nWhen the water comes and goes.\n\n## Spring tides\n\nThe largest range, near new and full moon.\n\n## Neap tides\n\nThe smallest range, at the quarter moons.\n";

async fn documents_as(api: &ApiHandle, token: &str) -> DocumentServiceClient<Authed> {
    DocumentServiceClient::new(api.authed(token).await)
}

async fn create(client: &mut DocumentServiceClient<Authed>, name: &str, text: &str) -> String {
    folio_tests::create_document(client, name, &[], text.as_bytes()).await.id
}

/// The document's whole log as ListDocumentEvents pages it.
async fn stored_events(client: &mut DocumentServiceClient<Authed>, id: &str) -> Vec<DocumentEvent> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .list_document_events(ListDocumentEventsRequest {
                document_id: id.into(),
                after_event_id: after,
                page_size: 1000,
            })
            .await
            .expect("list events")
            .into_inner();
        events.extend(page.events);
        if page.next_after_event_id == 0 {
            return events;
        }
        after = page.next_after_event_id;
    }
}

/// What a stream produced until it ended (or `limit` events arrived).
struct Received {
    events: Vec<DocumentEvent>,
    heartbeats: Vec<i64>,
    end: Option<tonic::Status>,
}

async fn receive(stream: &mut Streaming<WatchResponse>, limit: usize, timeout: Duration) -> Received {
    let mut received = Received {
        events: Vec::new(),
        heartbeats: Vec::new(),
        end: None,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    while received.events.len() < limit {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => panic!("the stream gave {} events in {timeout:?}, expected {limit}", received.events.len()),
            Ok(None) => break,
            Ok(Some(Err(status))) => {
                received.end = Some(status);
                break;
            }
            Ok(Some(Ok(WatchResponse {
                item: Some(Item::Event(event)),
                ..
            }))) => received.events.push(event),
            Ok(Some(Ok(WatchResponse {
                item: Some(Item::Heartbeat(heartbeat)),
                ..
            }))) => received.heartbeats.push(heartbeat.last_event_id),
            Ok(Some(Ok(_))) => panic!("an empty watch response"),
        }
    }
    received
}

fn ids(events: &[DocumentEvent]) -> Vec<i64> {
    events.iter().map(|e| e.id).collect()
}

fn assert_increasing(events: &[DocumentEvent]) {
    for pair in events.windows(2) {
        assert!(pair[0].id < pair[1].id, "ids out of order or repeated: {:?}", ids(events));
    }
}

async fn watch_document(client: &mut DocumentServiceClient<Authed>, id: &str, after: i64, follow: bool) -> Streaming<WatchResponse> {
    client
        .watch_document(WatchDocumentRequest {
            document_id: id.into(),
            after_event_id: after,
            follow,
        })
        .await
        .expect("watch document")
        .into_inner()
}

async fn watch_documents(client: &mut DocumentServiceClient<Authed>, after: Option<i64>) -> Streaming<WatchResponse> {
    client
        .watch_documents(WatchDocumentsRequest {
            after_event_id: after,
            ..Default::default()
        })
        .await
        .expect("watch documents")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_is_watched_live_to_ready_and_a_late_subscriber_gets_the_history_and_the_end() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let id = create(&mut client, "tides.md", MARKDOWN).await;
    let mut live = watch_document(&mut client, &id, 0, false).await;
    let worker = env.spawn_worker();

    let watched = receive(&mut live, usize::MAX, Duration::from_secs(30)).await;
    assert!(watched.end.is_none(), "ended with {:?}", watched.end);
    assert_increasing(&watched.events);
    let last = watched.events.last().expect("events");
    assert_eq!(last.state(), DocumentState::Ready, "the stream ends after READY");
    let stored = stored_events(&mut client, &id).await;
    assert_eq!(ids(&watched.events), ids(&stored), "every stored event, once, in order");
    let stages: HashSet<String> = watched.events.iter().map(|e| e.stage().as_str_name().to_owned()).collect();
    for stage in ["STORE", "PARSE", "CHUNK", "EMBED", "INDEX"] {
        assert!(stages.contains(stage), "{stage} missing from {stages:?}");
    }

    // A late subscriber gets the whole history, then the end.
    let mut late = watch_document(&mut client, &id, 0, false).await;
    let history = receive(&mut late, usize::MAX, Duration::from_secs(10)).await;
    assert!(history.end.is_none());
    assert_eq!(ids(&history.events), ids(&stored));

    // Resuming from a cursor gives the rest only; from the last id, nothing.
    let cursor = stored[2].id;
    let mut resumed = watch_document(&mut client, &id, cursor, false).await;
    let rest = receive(&mut resumed, usize::MAX, Duration::from_secs(10)).await;
    assert_eq!(ids(&rest.events), ids(&stored[3..]));
    let mut caught_up = watch_document(&mut client, &id, last.id, false).await;
    assert!(receive(&mut caught_up, usize::MAX, Duration::from_secs(10)).await.events.is_empty());

    // follow keeps a finished document's stream open, with heartbeats.
    env.set("FOLIO_WATCH_HEARTBEAT_SECS", "1");
    let api2 = env.spawn_api().await;
    let mut client2 = documents_as(&api2, &member.access_token).await;
    let mut following = watch_document(&mut client2, &id, last.id, true).await;
    match tokio::time::timeout(Duration::from_secs(5), following.next()).await {
        Ok(Some(Ok(WatchResponse {
            item: Some(Item::Heartbeat(heartbeat)),
            ..
        }))) => assert_eq!(heartbeat.last_event_id, last.id, "the heartbeat carries the position"),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    drop(following);

    worker.stop().await.unwrap();
    api2.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_concurrent_documents_and_workers_arrive_exactly_once_in_order_and_never_to_another_member() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_WORKER_CONCURRENCY", "4");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let other = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let mut other_client = documents_as(&api, &other.access_token).await;
    let admin = api.login(folio_tests::ADMIN_EMAIL, folio_tests::ADMIN_PASSWORD).await;
    let mut admin_client = documents_as(&api, &admin.access_token).await;

    let mut mine = watch_documents(&mut client, None).await;
    let mut theirs = watch_documents(&mut other_client, None).await;
    let mut everyone = watch_documents(&mut admin_client, None).await;
    // Streams from now on start with a heartbeat carrying their position.
    for stream in [&mut mine, &mut theirs, &mut everyone] {
        opening_heartbeat(stream).await;
    }

    let workers = [env.spawn_worker(), env.spawn_worker()];
    let uploads = (0..24).map(|n| {
        let mut client = client.clone();
        async move { create(&mut client, &format!("tides-{n}.md"), &format!("{MARKDOWN}\n\nCopy {n}.\n")).await }
    });
    let ids_created: Vec<String> = futures_util::future::join_all(uploads).await;
    let other_id = create(&mut other_client, "theirs.md", "# Theirs\n\nNot yours.\n").await;

    let mut expected = Vec::new();
    for id in &ids_created {
        // READY is the last event and commits with the state.
        wait_for_state(&client, id, DocumentState::Ready, Duration::from_secs(60)).await;
        expected.extend(stored_events(&mut client, id).await);
    }
    expected.sort_by_key(|e| e.id);

    let received = receive(&mut mine, expected.len(), Duration::from_secs(30)).await;
    assert_increasing(&received.events);
    assert_eq!(
        ids(&received.events),
        ids(&expected),
        "every event of the member's documents, once, in id order"
    );
    assert!(
        received.events.iter().all(|e| e.document_id != other_id),
        "another member's event leaked"
    );

    let theirs_received = receive(&mut theirs, 1, Duration::from_secs(30)).await;
    assert!(
        theirs_received.events.iter().all(|e| e.document_id == other_id),
        "a member saw someone else's event"
    );

    // The admin sees both members' events, in order.
    let everything = receive(&mut everyone, expected.len() + 1, Duration::from_secs(30)).await;
    assert_increasing(&everything.events);
    assert!(everything.events.iter().any(|e| e.document_id == other_id));

    // Another member's document is NOT_FOUND to watch.
    let refused = other_client
        .watch_document(WatchDocumentRequest {
            document_id: ids_created[0].clone(),
            ..Default::default()
        })
        .await
        .expect_err("someone else's document");
    assert_eq!(refused.code(), Code::NotFound);

    for worker in workers {
        worker.stop().await.unwrap();
    }
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_way_resumes_from_its_cursor_without_gap_or_duplicate() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let id = create(&mut client, "tides.md", MARKDOWN).await;

    let mut first = watch_document(&mut client, &id, 0, false).await;
    let part = receive(&mut first, 2, Duration::from_secs(30)).await;
    assert_eq!(part.events.len(), 2);
    drop(first);
    let cursor = part.events.last().unwrap().id;
    let mut second = watch_document(&mut client, &id, cursor, false).await;
    let rest = receive(&mut second, usize::MAX, Duration::from_secs(30)).await;
    let mut all = part.events;
    all.extend(rest.events);
    assert_increasing(&all);
    assert_eq!(all.last().unwrap().state(), DocumentState::Ready);
    assert_eq!(ids(&all), ids(&stored_events(&mut client, &id).await));

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_cut_streams_poll_postgres_and_lose_nothing_then_go_live_again() {
    let mut env = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:6379").await;
    env.set("REDIS_URL", proxy.url_through(&folio_tests::redis_url()));
    env.set("FOLIO_WATCH_POLL_MS", "100");
    // With no backstop read for a minute, events that arrive while Redis is
    // cut can only come from polling.
    env.set("FOLIO_WATCH_BACKSTOP_SECS", "60");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let system = api.system().await;
    let queued = [
        create(&mut client, "one.md", MARKDOWN).await,
        create(&mut client, "two.md", &format!("{MARKDOWN}\nTwo.\n")).await,
    ];
    let mut stream = watch_documents(&mut client, Some(0)).await;
    let stored = receive(&mut stream, 2, Duration::from_secs(10)).await;
    assert_eq!(stored.events.len(), 2, "the two STORE events");

    // The api-server loses Redis; the worker (on Redis directly) goes on
    // publishing notices nobody hears.
    proxy.cut();
    env.set("REDIS_URL", folio_tests::redis_url());
    let worker = env.spawn_worker();
    // Everything both documents go through arrives, by polling.
    let mut expected = Vec::new();
    for id in &queued {
        let pool = env.pool();
        let id: Uuid = id.parse().unwrap();
        let events = eventually(Duration::from_secs(30), "READY while Redis is cut", || {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get().await.ok()?;
                let document = folio_db::models::document::find(&mut conn, id).await.ok()??;
                (document.state == folio_db::documents::state::State::Ready).then_some(())?;
                folio_db::models::document_event::list(&mut conn, id, 0, 1000).await.ok()
            }
        })
        .await;
        expected.extend(events.into_iter().map(|e| e.id));
    }
    expected.sort_unstable();
    let rest = receive(&mut stream, expected.len() - 2, Duration::from_secs(20)).await;
    let mut all = stored.events;
    all.extend(rest.events);
    assert_increasing(&all);
    assert_eq!(ids(&all), expected, "nothing lost while polling");

    // Redis returns: notices are live again and new events keep flowing.
    proxy.restore();
    eventually(Duration::from_secs(20), "live notices again", || {
        let mut system = system.clone();
        async move {
            system
                .get_info(GetInfoRequest {})
                .await
                .ok()?
                .into_inner()
                .watch?
                .live_notices
                .then_some(())
        }
    })
    .await;
    let third = create(&mut client, "three.md", &format!("{MARKDOWN}\nThree.\n")).await;
    let after = receive(&mut stream, 1, Duration::from_secs(10)).await;
    assert_eq!(after.events[0].document_id, third);
    assert!(after.events[0].id > all.last().unwrap().id);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// Appends `count` events to `id` the way the worker does, each its own
/// transaction, then its notice: the start of a try, then progress.
async fn append_progress(env: &TestEnv, id: &str, count: usize) {
    let pool = env.pool();
    let config = env.config();
    let cache = Cache::connect(&config.redis_url, &config.redis_prefix).await.unwrap();
    let id: Uuid = id.parse().unwrap();
    let mut conn = pool.get().await.unwrap();
    let (at, started) = start_try(&mut conn, id).await;
    documents::announce(&cache, &started).await;
    for n in 1..count {
        let event = conn
            .transaction(async |conn| Ok::<_, LifecycleError>(progress(conn, id, &at, &format!("step {n}")).await))
            .await
            .unwrap();
        documents::announce(&cache, &event).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_falls_back_to_postgres_instead_of_buffering_and_misses_nothing() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_WATCH_BUFFER", "8");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let mut system = api.system().await;
    let id = create(&mut client, "tides.md", MARKDOWN).await;
    // A client that takes little at a time: small HTTP/2 windows, so the
    // server feels it not reading.
    let channel = tonic::transport::Endpoint::from_shared(api.url())
        .unwrap()
        .initial_stream_window_size(Some(8 << 10))
        .initial_connection_window_size(Some(8 << 10))
        .connect()
        .await
        .unwrap();
    let mut slow = DocumentServiceClient::new(InterceptedService::new(channel, Bearer::new(&member.access_token)));
    let mut stream = watch_document(&mut slow, &id, 0, true).await;
    let first = receive(&mut stream, 1, Duration::from_secs(10)).await;

    // 1,000 events while the client reads nothing: far more than the hub's
    // buffer (8) and the HTTP/2 windows hold.
    append_progress(&env, &id, 1000).await;
    let info = system.get_info(GetInfoRequest {}).await.unwrap().into_inner().watch.unwrap();
    assert!(info.fallbacks >= 1, "the slow stream was not dropped from the hub: {info:?}");

    let rest = receive(&mut stream, 1000, Duration::from_secs(60)).await;
    let mut all = first.events;
    all.extend(rest.events);
    assert_increasing(&all);
    assert_eq!(ids(&all), ids(&stored_events(&mut client, &id).await), "every event once, in order");

    drop(stream);
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watchers_all_receive_every_event() {
    const WATCHERS: usize = 1000;
    let mut env = TestEnv::new().await;
    env.set("FOLIO_WATCH_MAX_PER_USER", WATCHERS.to_string());
    env.set("FOLIO_RATE_LIMIT_MEMBER", "100000");
    env.set("FOLIO_RATE_LIMIT_PEER", "100000");
    env.set("FOLIO_DB_POOL_SIZE", "16");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let id = create(&mut client, "tides.md", MARKDOWN).await;

    // Ten connections of a hundred streams each (HTTP/2 servers cap the streams
    // of one connection).
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(documents_as(&api, &member.access_token).await);
    }
    let mut streams = Vec::with_capacity(WATCHERS);
    for n in 0..WATCHERS {
        let mut client = clients[n % clients.len()].clone();
        streams.push(watch_document(&mut client, &id, 0, false).await);
    }
    let mut system = api.system().await;
    let info = system.get_info(GetInfoRequest {}).await.unwrap().into_inner().watch.unwrap();
    assert_eq!(info.streams, WATCHERS as i64);

    let worker = env.spawn_worker();
    let receivers = streams
        .into_iter()
        .map(|mut stream| tokio::spawn(async move { receive(&mut stream, usize::MAX, Duration::from_secs(60)).await }));
    let results = futures_util::future::join_all(receivers).await;
    let expected = ids(&stored_events(&mut client, &id).await);
    assert!(expected.len() >= 6, "a full pipeline log: {expected:?}");
    for (n, result) in results.into_iter().enumerate() {
        let received = result.unwrap();
        assert!(received.end.is_none(), "watcher {n} ended with {:?}", received.end);
        assert_eq!(ids(&received.events), expected, "watcher {n}");
    }

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_unauthenticated_on_logout_and_expiry_and_unavailable_on_shutdown() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let id = create(&mut client, "tides.md", MARKDOWN).await;

    // Logout revokes the session: its stream ends at once.
    let mut stream = watch_document(&mut client, &id, 0, true).await;
    receive(&mut stream, 1, Duration::from_secs(10)).await;
    api.auth_as(&member.access_token).await.logout(LogoutRequest {}).await.unwrap();
    let ended = receive(&mut stream, usize::MAX, Duration::from_secs(5)).await;
    assert_eq!(ended.end.map(|s| s.code()), Some(Code::Unauthenticated), "logout ends the stream");

    // An access token that expires ends its stream.
    env.set("FOLIO_ACCESS_TOKEN_TTL_SECS", "2");
    let short = env.spawn_api().await;
    let session = short.login(folio_tests::ADMIN_EMAIL, folio_tests::ADMIN_PASSWORD).await;
    let mut admin_client = documents_as(&short, &session.access_token).await;
    let mut stream = watch_document(&mut admin_client, &id, 0, true).await;
    let ended = receive(&mut stream, usize::MAX, Duration::from_secs(10)).await;
    let status = ended.end.expect("the stream ends");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());

    // Shutdown ends streams with UNAVAILABLE, naming the cursor.
    env.set("FOLIO_ACCESS_TOKEN_TTL_SECS", "900");
    let last = env.spawn_api().await;
    let session = last.login(folio_tests::ADMIN_EMAIL, folio_tests::ADMIN_PASSWORD).await;
    let mut admin_client = documents_as(&last, &session.access_token).await;
    let mut stream = watch_document(&mut admin_client, &id, 0, true).await;
    let got = receive(&mut stream, 1, Duration::from_secs(10)).await;
    let stopping = tokio::spawn(last.stop());
    let ended = receive(&mut stream, usize::MAX, Duration::from_secs(10)).await;
    let status = ended.end.expect("the stream ends");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains(&got.events[0].id.to_string()), "{}", status.message());
    stopping.await.unwrap().unwrap();

    short.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_watch_requests_are_refused_with_field_violations_and_streams_are_capped_per_account() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_WATCH_MAX_PER_USER", "2");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let id = create(&mut client, "tides.md", MARKDOWN).await;

    for (request, field) in [
        (
            WatchDocumentRequest {
                document_id: "not-a-uuid".into(),
                ..Default::default()
            },
            "document_id",
        ),
        (
            WatchDocumentRequest {
                document_id: id.clone(),
                after_event_id: -1,
                follow: false,
            },
            "after_event_id",
        ),
    ] {
        let status = client.watch_document(request).await.expect_err("bad request");
        assert_eq!(status.code(), Code::InvalidArgument);
        let violations = status.get_details_bad_request().expect("field violations").field_violations;
        assert_eq!(violations[0].field, field);
    }
    let status = client
        .watch_documents(WatchDocumentsRequest {
            state: 99,
            ..Default::default()
        })
        .await
        .expect_err("unknown state");
    assert_eq!(status.code(), Code::InvalidArgument);

    let _one = watch_document(&mut client, &id, 0, true).await;
    let _two = watch_documents(&mut client, None).await;
    let status = client
        .watch_document(WatchDocumentRequest {
            document_id: id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("over the cap");
    assert_eq!(status.code(), Code::ResourceExhausted);
    drop(_one);
    // The place is freed when a stream goes away.
    eventually(Duration::from_secs(5), "a free place", || {
        let mut client = client.clone();
        let id = id.clone();
        async move {
            client
                .watch_document(WatchDocumentRequest {
                    document_id: id,
                    ..Default::default()
                })
                .await
                .ok()
        }
    })
    .await;

    api.stop().await.unwrap();
    env.cleanup().await;
}

/// Starts a try at `id`'s first attempt, as a worker does, with its event.
async fn start_try(conn: &mut diesel_async::AsyncPgConnection, id: Uuid) -> (Try, StoredEvent) {
    let at = Try {
        attempt: 1,
        number: 1,
        max: 3,
        token: Uuid::new_v4(),
    };
    let started = lifecycle::start_try(conn, id, &at, &HAND_LEASE).await.unwrap();
    (at, started.event.unwrap())
}

/// One progress event of try `at` on `id`, in the caller's open transaction.
async fn progress(conn: &mut diesel_async::AsyncPgConnection, id: Uuid, at: &Try, message: &str) -> StoredEvent {
    let note = Note {
        percent: 10,
        message: message.into(),
        details: serde_json::json!({}),
    };
    lifecycle::progress(conn, id, at, Stage::Parse, note).await.unwrap().event.unwrap()
}

/// Sessions of the test's database waiting for an advisory lock: in the watch
/// tests that lock is only the append lock `document_event::settled` takes.
async fn append_lock_waiters(pool: &folio_db::Pool) -> i64 {
    use diesel_async::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        waiting: i64,
    }
    let mut conn = pool.get().await.expect("a connection");
    let waiting: Waiting = diesel::sql_query(
        "SELECT count(*) AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .get_result(&mut conn)
    .await
    .expect("read pg_locks");
    waiting.waiting
}

/// Reads the heartbeat a stream opened without a cursor starts with.
async fn opening_heartbeat(stream: &mut Streaming<WatchResponse>) {
    match stream.next().await {
        Some(Ok(WatchResponse {
            item: Some(Item::Heartbeat(_)),
            ..
        })) => {}
        other => panic!("expected the opening heartbeat, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_do_not_wait_for_each_other_and_a_lower_id_that_commits_later_is_still_streamed_first() {
    use diesel_async::SimpleAsyncConnection as _;
    use folio_db::models::document_event;

    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = documents_as(&api, &member.access_token).await;
    let first: Uuid = create(&mut client, "first.md", MARKDOWN).await.parse().unwrap();
    let second: Uuid = create(&mut client, "second.md", "# Second\n\nAnother.\n").await.parse().unwrap();
    let config = env.config();
    let cache = Cache::connect(&config.redis_url, &config.redis_prefix).await.unwrap();
    let pool = env.pool();
    let mut slow = pool.get().await.unwrap();
    let (first_try, _) = start_try(&mut slow, first).await;
    let (second_try, _) = start_try(&mut slow, second).await;
    let mut stream = watch_documents(&mut client, None).await;
    opening_heartbeat(&mut stream).await;

    // An append that draws its id and then stays open...
    slow.batch_execute("BEGIN").await.unwrap();
    let lower = progress(&mut slow, first, &first_try, "slow").await;
    // ...does not hold up another document's append, which takes a higher id
    // and commits first.
    let mut fast = pool.get().await.unwrap();
    let higher = tokio::time::timeout(
        Duration::from_secs(5),
        fast.transaction(async |conn| Ok::<_, LifecycleError>(progress(conn, second, &second_try, "fast").await)),
    )
    .await
    .expect("an append waited for another transaction's commit")
    .unwrap();
    assert!(lower.id < higher.id);
    documents::announce(&cache, &higher).await;

    // The settled horizon waits for the open append, and streams hand out
    // nothing past it meanwhile (the higher id is committed, the lower is not).
    let mut reader = pool.get().await.unwrap();
    let horizon = tokio::spawn(async move { document_event::settled(&mut reader).await.unwrap() });
    // Evidence instead of a pause: two sessions wait for the append lock the
    // open append holds, this horizon and the hub's (the announce of the higher
    // id woke the hub to read the log up to a horizon of its own). So the
    // horizon had its chance to finish, and the hub got as far as it can
    // before handing anything out.
    eventually(
        Duration::from_secs(10),
        "the horizon and the hub waiting for the open append",
        || {
            let pool = pool.clone();
            async move { (append_lock_waiters(&pool).await >= 2).then_some(()) }
        },
    )
    .await;
    assert!(!horizon.is_finished(), "the horizon did not wait for an append in flight");
    // Nothing is streamed meanwhile. An event handed out before the hub waited
    // could still be on the wire here; it would be the higher id, so the order
    // asserted after the commit (the lower id first) catches it too.
    let early = stream.next().now_or_never();
    assert!(early.is_none(), "an event was streamed past an append in flight: {early:?}");

    slow.batch_execute("COMMIT").await.unwrap();
    documents::announce(&cache, &lower).await;
    assert!(horizon.await.unwrap() >= higher.id);
    let received = receive(&mut stream, 2, Duration::from_secs(10)).await;
    assert_eq!(ids(&received.events), vec![lower.id, higher.id], "both, the lower id first");

    drop(slow);
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_stream_survives_a_proxy_that_closes_idle_connections_by_its_heartbeats() {
    // A proxy that closes connections idle for 3 s, like a load balancer's
    // idle timeout. Heartbeats every second keep the stream alive through it;
    // with heartbeats every 30 s the same proxy cuts it, which shows the
    // proxy's limit is real and the heartbeats are what carry the stream.
    for (heartbeat_secs, survives) in [(1, true), (30, false)] {
        let mut env = TestEnv::new().await;
        env.set("FOLIO_WATCH_HEARTBEAT_SECS", heartbeat_secs.to_string());
        let api = env.spawn_api().await;
        let member = api.register_member().await;
        let proxy = TcpProxy::with_idle_limit(&api.addr.to_string(), Duration::from_secs(3)).await;
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", proxy.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut through = DocumentServiceClient::new(InterceptedService::new(channel, Bearer::new(&member.access_token)));
        let mut stream = watch_documents(&mut through, None).await;

        // Eight idle seconds: nothing but heartbeats, unless the proxy cuts.
        let quiet_until = tokio::time::Instant::now() + Duration::from_secs(8);
        let (mut heartbeats, mut ended) = (0, None);
        while let Ok(next) = tokio::time::timeout_at(quiet_until, stream.next()).await {
            match next {
                Some(Ok(WatchResponse {
                    item: Some(Item::Heartbeat(_)),
                    ..
                })) => heartbeats += 1,
                Some(Ok(other)) => panic!("something other than a heartbeat while idle: {other:?}"),
                Some(Err(status)) => {
                    ended = Some(status);
                    break;
                }
                None => {
                    ended = Some(tonic::Status::unknown("the stream closed"));
                    break;
                }
            }
        }
        if survives {
            assert!(ended.is_none(), "heartbeats every {heartbeat_secs} s: the stream ended: {ended:?}");
            assert!(heartbeats >= 5, "{heartbeats} heartbeats in 8 s");
            assert_eq!(proxy.idle_closed(), 0);
            // And it still carries events.
            let mut direct = documents_as(&api, &member.access_token).await;
            let id = create(&mut direct, "after-the-quiet.md", MARKDOWN).await;
            let received = receive(&mut stream, 1, Duration::from_secs(30)).await;
            assert_eq!(received.events[0].document_id, id);
        } else {
            assert!(ended.is_some(), "the proxy never cut the quiet stream ({heartbeats} heartbeats)");
            assert!(proxy.idle_closed() >= 1, "the stream ended, but not by the proxy: {ended:?}");
        }
        drop(stream);
        api.stop().await.unwrap();
        env.cleanup().await;
    }
}

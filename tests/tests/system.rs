//! The foundation end to end: health, reflection, GetInfo, the ping round trip
//! through outbox, relay, RabbitMQ and a worker, ListWorkers, and the settings
//! admins change at run time.
//!
//! A little over 500 lines on purpose: one file for the system surface,
//! whose tests share their servers' set-up.

use std::time::Duration;

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use folio_db::{models::ping, schema::processed_jobs};
use folio_proto::v1::{
    CreateDocumentRequest, DocumentMetadata, GetInfoRequest, GetSettingsRequest, ListAuditEventsRequest, ListDocumentsRequest,
    ListWorkersRequest, PingWorkersRequest, SettingSource, UpdateSettingsRequest, WhoAmIRequest,
    document_service_client::DocumentServiceClient, system_service_client::SystemServiceClient,
};
use folio_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, TcpProxy, TestEnv, eventually, health_status, violated_fields};
use futures_util::StreamExt as _;
use tonic_health::pb::health_check_response::ServingStatus;

/// The health entries an api-server reports: the server (""), every
/// `folio.v1` service, and one per dependency.
const HEALTH_ENTRIES: [&str; 10] = [
    "",
    "folio.v1.SystemService",
    "folio.v1.AuthService",
    "folio.v1.UserService",
    "folio.v1.DocumentService",
    "folio.v1.SearchService",
    "folio.v1.SharingService",
    "folio.dependency.postgres",
    "folio.dependency.rabbitmq",
    "folio.dependency.redis",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_for_the_server_every_service_and_dependency_and_not_found_for_an_unknown_one() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    for service in HEALTH_ENTRIES {
        assert_eq!(
            health_status(&api.url(), service).await,
            Some(ServingStatus::Serving),
            "{service:?}"
        );
    }
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let unknown = HealthClient::new(api.channel().await)
        .check(HealthCheckRequest {
            service: "folio.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    api.stop().await.unwrap();
    env.cleanup().await;
}

async fn wait_for_health(url: &str, service: &str, wanted: ServingStatus) {
    eventually(Duration::from_secs(10), &format!("{service:?} {wanted:?}"), || async move {
        (health_status(url, service).await == Some(wanted)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_health_is_not_serving_while_calls_are_still_taken_then_the_server_exits() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_SHUTDOWN_DELAY_SECS", "5");
    let mut api = folio_tests::spawn_api_process(&env).await;
    wait_for_health(&api.url, "", ServingStatus::Serving).await;
    let pid = api.child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // A load balancer polling health sees NOT_SERVING and stops sending
    // calls; those that still arrive are answered.
    let url = api.url.clone();
    eventually(Duration::from_secs(10), "the server and its services NOT_SERVING", || {
        let url = url.clone();
        async move {
            let server = health_status(&url, "").await;
            let documents = health_status(&url, "folio.v1.DocumentService").await;
            (server == Some(ServingStatus::NotServing) && documents == Some(ServingStatus::NotServing)).then_some(())
        }
    })
    .await;
    let mut system = SystemServiceClient::new(tonic::service::interceptor::InterceptedService::new(
        api.channel.clone(),
        folio_tests::Bearer::new(&api.admin_token),
    ));
    let info = system
        .get_info(GetInfoRequest {})
        .await
        .expect("a call during the shutdown delay")
        .into_inner();
    assert!(!info.version.is_empty());

    let exited = tokio::time::timeout(Duration::from_secs(30), api.child.wait())
        .await
        .expect("folio-api exits after the delay")
        .unwrap();
    assert!(exited.success(), "{exited}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_postgres_is_cut_and_serving_again_after() {
    let mut env = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let database_url = env.vars["DATABASE_URL"].clone();
    env.set("DATABASE_URL", proxy.url_through(&database_url));
    let api = env.spawn_api().await;

    proxy.cut();
    wait_for_health(&api.url(), "folio.dependency.postgres", ServingStatus::NotServing).await;
    // Without Postgres no RPC can do its job: the server and every service
    // say so, while the other dependencies' entries still answer SERVING.
    for service in HEALTH_ENTRIES {
        let wanted = if service.starts_with("folio.dependency.") && service != "folio.dependency.postgres" {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        assert_eq!(health_status(&api.url(), service).await, Some(wanted), "{service:?}");
    }

    proxy.restore();
    wait_for_health(&api.url(), "", ServingStatus::Serving).await;
    for service in HEALTH_ENTRIES {
        assert_eq!(
            health_status(&api.url(), service).await,
            Some(ServingStatus::Serving),
            "{service:?}"
        );
    }
    api.stop().await.unwrap();
    env.set("DATABASE_URL", database_url);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_the_system_service() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;

    use tonic_reflection::pb::{v1, v1alpha};
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = v1::server_reflection_client::ServerReflectionClient::new(api.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("v1 reflection did not list services");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"folio.v1.SystemService".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = v1alpha::server_reflection_client::ServerReflectionClient::new(api.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("v1alpha reflection did not list services");
    };
    assert!(list.service.iter().any(|s| s.name == "folio.v1.SystemService"));

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_info_reports_version_uptime_and_each_dependency() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let info = api.system().await.get_info(GetInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(info.uptime.is_some() && info.started_at.is_some());
    let names: Vec<_> = info.dependencies.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["postgres", "rabbitmq", "redis"]);
    for dependency in &info.dependencies {
        assert!(dependency.up, "{} is down: {}", dependency.name, dependency.error);
        assert!(dependency.error.is_empty());
        let latency = dependency.latency.unwrap();
        assert!(latency.seconds == 0 && latency.nanos > 0, "{}: {latency:?}", dependency.name);
    }
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_consumed_and_recorded_and_the_queue_ends_empty() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let mut system = api.system().await;

    let response = system
        .ping_workers(PingWorkersRequest {
            wait: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.received, "no worker recorded the ping");
    assert!(!response.worker_id.is_empty());
    assert!(response.round_trip.is_some());

    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let stored = ping::find(&mut conn, response.ping_id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.receipts, 1);
    assert_eq!(stored.worker_id.unwrap().to_string(), response.worker_id);
    folio_tests::outbox_drained(&pool).await;
    assert_eq!(folio_tests::ready_messages(&env.topology().process_queue()).await, 0);

    let workers = eventually(Duration::from_secs(5), "a heartbeat after the ping", || {
        let mut system = system.clone();
        async move {
            let list = system.list_workers(ListWorkersRequest::default()).await.ok()?.into_inner();
            list.workers.into_iter().find(|w| {
                w.last_seen_at
                    .as_ref()
                    .is_some_and(|seen| seen.seconds > w.started_at.as_ref().unwrap().seconds)
            })
        }
    })
    .await;
    assert_eq!(workers.id, response.worker_id);
    assert_eq!(workers.pid, std::process::id());
    assert_eq!(workers.version, env!("CARGO_PKG_VERSION"));
    let seen = workers.last_seen_at.unwrap().seconds;
    let now = chrono::Utc::now().timestamp();
    assert!(now - seen <= 3, "heartbeat is {}s old", now - seen);

    worker.stop().await.unwrap();
    let stopped = system
        .list_workers(ListWorkersRequest {
            include_stopped: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stopped.workers[0].stopped_at.is_some());
    let running = system.list_workers(ListWorkersRequest::default()).await.unwrap().into_inner();
    assert!(running.workers.is_empty());

    let processed: i64 = processed_jobs::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(processed, 1);
    drop(conn);
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_workers_pages_with_tokens_and_refuses_bad_ones() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let workers: Vec<_> = (0..3).map(|_| env.spawn_worker()).collect();
    let mut system = api.system().await;
    eventually(Duration::from_secs(10), "three workers", || {
        let mut system = system.clone();
        async move {
            (system
                .list_workers(ListWorkersRequest::default())
                .await
                .ok()?
                .into_inner()
                .workers
                .len()
                == 3)
                .then_some(())
        }
    })
    .await;
    // Heartbeats reorder the list; stop them so pages are stable.
    for worker in workers {
        worker.stop().await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = system
            .list_workers(ListWorkersRequest {
                page_size: 2,
                page_token: token,
                include_stopped: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.workers.len() <= 2);
        seen.extend(page.workers.into_iter().map(|w| w.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);

    let status = system
        .list_workers(ListWorkersRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert_eq!(details.bad_request().unwrap().field_violations[0].field, "page_token");

    let status = system
        .ping_workers(PingWorkersRequest {
            wait: Some(prost_types::Duration { seconds: 61, nanos: 0 }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert_eq!(details.bad_request().unwrap().field_violations[0].field, "wait");
    let mut conn = env.pool().get().await.unwrap();
    let outbox_rows: i64 = folio_db::schema::outbox::table
        .filter(folio_db::schema::outbox::kind.eq("ping"))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(outbox_rows, 0, "a refused ping left an outbox row");
    drop(conn);

    api.stop().await.unwrap();
    env.cleanup().await;
}

/// Uploads `size` bytes of text as the member behind `client`.
async fn create_text(
    client: &mut DocumentServiceClient<folio_tests::Authed>,
    size: usize,
) -> Result<folio_proto::v1::Document, tonic::Status> {
    let request = CreateDocumentRequest {
        metadata: Some(DocumentMetadata {
            filename: format!("{size}.txt"),
            ..Default::default()
        }),
        content: "a".repeat(size).into_bytes(),
    };
    client
        .create_document(request)
        .await
        .map(|r| r.into_inner().document.expect("a document"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changes_the_upload_limit_at_run_time_and_every_api_server_applies_it() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_MAX_UPLOAD_BYTES", "5000");
    env.set("FOLIO_SETTINGS_REFRESH_MS", "100");
    let api = env.spawn_api().await;
    let other = env.spawn_api().await;
    let member = api.register_member().await;
    let mut admin = api.system().await;
    let mut as_member = SystemServiceClient::new(api.authed(&member.access_token).await);
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let documents_elsewhere = DocumentServiceClient::new(other.authed(&member.access_token).await);

    // The environment's value, readable by any signed-in user.
    let settings = as_member.get_settings(GetSettingsRequest {}).await.unwrap().into_inner();
    let limit = settings.max_upload_bytes.unwrap();
    assert_eq!((limit.value, limit.default_value), (5000, 5000));
    assert_eq!(limit.source(), SettingSource::Environment);
    assert!(limit.updated_at.is_none() && limit.updated_by.is_empty());
    create_text(&mut documents, 4000).await.unwrap();

    // Only an admin may change it.
    let status = as_member
        .update_settings(UpdateSettingsRequest {
            max_upload_bytes: Some(1 << 30),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Bad requests name the field and change nothing.
    let bad = [
        (Some(0), vec![], "max_upload_bytes"),
        (Some(1 << 41), vec![], "max_upload_bytes"),
        (None, vec!["max_download_bytes".to_owned()], "reset"),
        (Some(1000), vec!["max_upload_bytes".to_owned()], "reset"),
        (None, vec![], "max_upload_bytes"),
    ];
    for (max_upload_bytes, reset, field) in bad {
        let status = admin
            .update_settings(UpdateSettingsRequest {
                max_upload_bytes,
                reset,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert_eq!(violated_fields(&status), [field], "{status:?}");
    }
    let unchanged = admin.get_settings(GetSettingsRequest {}).await.unwrap().into_inner();
    assert_eq!(unchanged.max_upload_bytes.unwrap().value, 5000);

    // Lowered: the server that took the call refuses a larger upload at once,
    // leaving nothing behind; the other server within its refresh.
    let admin_id = api
        .auth_as(&api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token)
        .await
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner()
        .id;
    let updated = admin
        .update_settings(UpdateSettingsRequest {
            max_upload_bytes: Some(3000),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .max_upload_bytes
        .unwrap();
    assert_eq!((updated.value, updated.default_value), (3000, 5000));
    assert_eq!(updated.source(), SettingSource::Admin);
    assert_eq!(updated.updated_by, admin_id);
    assert!(updated.updated_at.is_some());
    let status = create_text(&mut documents, 4000).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["content"]);
    assert!(status.message().contains("3000"), "{status:?}");
    eventually(Duration::from_secs(5), "the other api-server applies the new limit", || {
        let mut documents_elsewhere = documents_elsewhere.clone();
        async move {
            create_text(&mut documents_elsewhere, 4000)
                .await
                .err()
                .filter(|s| s.code() == tonic::Code::InvalidArgument)
        }
    })
    .await;
    create_text(&mut documents, 3000).await.unwrap();
    let listed = documents
        .list_documents(ListDocumentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .documents;
    let mut sizes: Vec<i64> = listed.iter().map(|d| d.size_bytes).collect();
    sizes.sort();
    assert_eq!(sizes, [3000, 4000], "the refused uploads left no document");

    // The change is in the audit log with what it set.
    let users = api.admin_users().await;
    eventually(Duration::from_secs(5), "the settings change in the audit log", || {
        let mut users = users.clone();
        let admin_id = admin_id.clone();
        async move {
            let events = users
                .list_audit_events(ListAuditEventsRequest::default())
                .await
                .ok()?
                .into_inner()
                .events;
            events
                .into_iter()
                .find(|e| e.event == "settings_updated" && e.target == "settings:max_upload_bytes=3000" && e.actor_id == admin_id)
        }
    })
    .await;

    // Reset: the environment's value again, on both servers.
    let reset = admin
        .update_settings(UpdateSettingsRequest {
            reset: vec!["max_upload_bytes".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .max_upload_bytes
        .unwrap();
    assert_eq!((reset.value, reset.source()), (5000, SettingSource::Environment));
    create_text(&mut documents, 4500).await.unwrap();
    eventually(Duration::from_secs(5), "the other api-server applies the reset", || {
        let mut documents_elsewhere = documents_elsewhere.clone();
        async move { create_text(&mut documents_elsewhere, 4600).await.ok() }
    })
    .await;

    other.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

//! Registered services: an admin registers an HTTP server the test runs, an
//! address nothing listens on and the api-server itself over gRPC health; the
//! configured model server is registered at start; every signed-in user sees
//! their status, latency and last change, and the HTTP one goes down when the
//! test stops it.

use std::time::Duration;

use folio_proto::v1::{
    ListServicesRequest, RegisterServiceRequest, Service, ServiceKind, ServiceStatus, UnregisterServiceRequest,
    system_service_client::SystemServiceClient,
};
use folio_tests::{TestEnv, eventually, fake_model::Fake, fake_model::Reply, violated_fields};

async fn listed(system: &mut SystemServiceClient<folio_tests::Authed>) -> Vec<Service> {
    system.list_services(ListServicesRequest {}).await.unwrap().into_inner().services
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_services_are_checked_and_their_changes_seen() {
    // It answers the check's GET with 404: up, as the server answers.
    let model_server = Fake::start(|_, _| Reply::Status(500, "only GETs expected here")).await;
    let mut env = TestEnv::new().await;
    model_server.serve(&mut env);
    env.set("FOLIO_SERVICES_POLL_SECS", "1");
    let api = env.spawn_api().await;

    // An HTTP server the test can stop.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wiki_url = format!("http://{}/health", listener.local_addr().unwrap());
    let (stop_wiki, stopped) = tokio::sync::oneshot::channel::<()>();
    let wiki = tokio::spawn(async move {
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();

    let mut admin = api.system().await;
    let register = |name: &str, kind: ServiceKind, target: String| RegisterServiceRequest {
        name: name.into(),
        kind: kind as i32,
        target,
    };
    let up = admin
        .register_service(register("wiki", ServiceKind::Http, wiki_url.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.status(), ServiceStatus::Up, "checked once when registered: {up:?}");
    assert!(up.latency.is_some() && up.checked_at.is_some() && up.changed_at.is_some() && !up.automatic);
    let down = admin
        .register_service(register("nowhere", ServiceKind::Http, format!("http://{closed}/")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.status(), ServiceStatus::Down);
    assert!(!down.error.is_empty());
    let itself = admin
        .register_service(register("folio-api", ServiceKind::Grpc, api.url()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(itself.status(), ServiceStatus::Up, "{itself:?}");

    // Bad registrations name their field; members may look but not register.
    let refused = admin
        .register_service(register("bad name!", ServiceKind::Http, wiki_url.clone()))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["name"]);
    let refused = admin
        .register_service(register("ftp", ServiceKind::Http, "ftp://files.example".into()))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["target"]);
    let refused = admin
        .register_service(register("kindless", ServiceKind::Unspecified, wiki_url.clone()))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["kind"]);
    let member = api.register_member().await;
    let mut as_member = SystemServiceClient::new(api.authed(&member.access_token).await);
    let denied = as_member
        .register_service(register("mine", ServiceKind::Http, wiki_url.clone()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // The model server was registered at start and is checked by the poller
    // (a 404 still shows it answers).
    let services = eventually(Duration::from_secs(20), "the embedder checked", || {
        let mut as_member = as_member.clone();
        async move {
            let services = listed(&mut as_member).await;
            let embedder = services.iter().find(|s| s.name == "embedder")?;
            (embedder.status() == ServiceStatus::Up).then_some(services)
        }
    })
    .await;
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["embedder", "folio-api", "nowhere", "wiki"]);
    let embedder = &services[0];
    assert!(embedder.automatic && embedder.target == model_server.url, "{embedder:?}");

    // The wiki stops: the next checks find it down, and its change is dated.
    let was = up.changed_at.unwrap();
    stop_wiki.send(()).unwrap();
    wiki.await.unwrap().unwrap();
    let wiki_down = eventually(Duration::from_secs(20), "the wiki seen down", || {
        let mut as_member = as_member.clone();
        async move {
            let services = listed(&mut as_member).await;
            services.into_iter().find(|s| s.name == "wiki" && s.status() == ServiceStatus::Down)
        }
    })
    .await;
    let changed = wiki_down.changed_at.unwrap();
    assert!((changed.seconds, changed.nanos) > (was.seconds, was.nanos), "{wiki_down:?}");
    assert!(!wiki_down.error.is_empty());

    // Unregistered once; a second time there is nothing to remove.
    admin
        .unregister_service(UnregisterServiceRequest { name: "nowhere".into() })
        .await
        .unwrap();
    let again = admin
        .unregister_service(UnregisterServiceRequest { name: "nowhere".into() })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);
    assert!(!listed(&mut admin).await.iter().any(|s| s.name == "nowhere"));

    api.stop().await.unwrap();
    env.cleanup().await;
}

//! New passwords against a Pwned Passwords range API: a local server
//! speaking the protocol (`GET /range/<five hex digits>`, `SUFFIX:COUNT`
//! lines, padding entries of count 0) holds one breached password. Register,
//! CreateUser and ChangePassword refuse it, naming their field; only the five
//! digits leave the server, with `Add-Padding: true`; a server that is slow
//! or failing lets passwords through (fail open).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
};
use folio_proto::v1::{ChangePasswordRequest, CreateUserRequest, RegisterRequest};
use folio_tests::{TestEnv, reason, violated_fields};
use tonic::Code;

/// SHA-1 of "correct horse battery staple", computed with sha1sum.
const BREACHED: (&str, &str) = ("ABF7A", "AD6438836DBE526AA231ABDE2D0EEF74D42");
const BREACHED_PASSWORD: &str = "correct horse battery staple";
const CLEAN_PASSWORD: &str = "a fresh and unbreached phrase";

/// What the range server was asked: each path, and whether padding was asked
/// for.
type Asked = Arc<Mutex<Vec<(String, bool)>>>;

async fn range(State(asked): State<Asked>, Path(prefix): Path<String>, headers: HeaderMap) -> impl IntoResponse {
    let padded = headers.get("add-padding").is_some_and(|v| v == "true");
    asked.lock().unwrap().push((format!("/range/{prefix}"), padded));
    // Two real-looking entries and a padding one for every prefix; the
    // breached password's suffix under its own prefix.
    let mut body = String::from("0018A45C4D1DEF81644B54AB7F969B88D65:3\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0\r\n");
    if prefix == BREACHED.0 {
        body.push_str(&format!("{}:3645804\r\n", BREACHED.1));
    }
    body
}

async fn slow() -> impl IntoResponse {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "0018A45C4D1DEF81644B54AB7F969B88D65:3\r\n"
}

async fn failing() -> impl IntoResponse {
    (StatusCode::SERVICE_UNAVAILABLE, "try later")
}

/// The range server on a port of its own.
async fn serve(asked: Asked) -> String {
    let app = axum::Router::new()
        .route("/range/{prefix}", get(range))
        .route("/slow/{prefix}", get(slow))
        .route("/failing/{prefix}", get(failing))
        .with_state(asked);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn register(email: &str, password: &str) -> RegisterRequest {
    RegisterRequest {
        email: email.into(),
        password: password.into(),
        display_name: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breached_passwords_are_refused_and_only_a_prefix_leaves() {
    let asked = Asked::default();
    let url = serve(asked.clone()).await;
    let mut env = TestEnv::new().await;
    env.set("FOLIO_BREACHED_PASSWORDS_URL", format!("{url}/range/"));
    let api = env.spawn_api().await;
    let mut auth = api.auth().await;

    let refused = auth.register(register("eve@folio.test", BREACHED_PASSWORD)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        (violated_fields(&refused), reason(&refused)),
        (vec!["password".to_owned()], "PASSWORD_BREACHED".to_owned())
    );
    assert_eq!(
        *asked.lock().unwrap(),
        [(format!("/range/{}", BREACHED.0), true)],
        "only five hex digits, padded"
    );

    let session = auth
        .register(register("ann@folio.test", CLEAN_PASSWORD))
        .await
        .unwrap()
        .into_inner();
    let asked_now = asked.lock().unwrap().clone();
    assert_eq!(asked_now.len(), 2);
    assert_eq!(asked_now[1].0, "/range/2069A", "the clean password's prefix");

    let changed = api
        .auth_as(&session.access_token)
        .await
        .change_password(ChangePasswordRequest {
            current_password: CLEAN_PASSWORD.into(),
            new_password: BREACHED_PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&changed), ["new_password"]);
    let created = api
        .admin_users()
        .await
        .create_user(CreateUserRequest {
            email: "bob@folio.test".into(),
            password: BREACHED_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&created), ["password"]);
    api.stop().await.unwrap();

    // A range API that is too slow or failing lets the password through.
    for (path, email) in [("slow", "slow@folio.test"), ("failing", "failing@folio.test")] {
        env.set("FOLIO_BREACHED_PASSWORDS_URL", format!("{url}/{path}"));
        env.set("FOLIO_BREACHED_PASSWORDS_TIMEOUT_MS", "300");
        let api = env.spawn_api().await;
        let session = api
            .auth()
            .await
            .register(register(email, BREACHED_PASSWORD))
            .await
            .unwrap_or_else(|status| panic!("{path}: {status:?}"))
            .into_inner();
        assert!(!session.access_token.is_empty());
        api.stop().await.unwrap();
    }
    env.cleanup().await;
}

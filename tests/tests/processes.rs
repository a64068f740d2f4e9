//! The real binaries: start-up failures end with one line naming the culprit and
//! a non-zero exit; SIGTERM stops both cleanly without losing or redoing work.

use std::{process::Stdio, time::Duration};

use folio_db::models::ping;
use folio_proto::v1::PingWorkersRequest;
use folio_tests::{TestEnv, eventually};
use tokio::process::Child;
use uuid::Uuid;

async fn exit_and_stderr(mut command: tokio::process::Command) -> (i32, Vec<String>) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        command.stdout(Stdio::null()).stderr(Stdio::piped()).output(),
    )
    .await
    .expect("process exits")
    .expect("process runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), stderr.lines().map(str::to_owned).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_malformed_setting_stops_start_up_with_one_line_naming_it() {
    let mut env = TestEnv::new().await;
    for binary in ["folio-api", "folio-worker"] {
        for (variable, value) in [
            ("DATABASE_URL", None),
            ("AMQP_URL", Some("http://wrong-scheme")),
            ("FOLIO_GRPC_ADDR", Some("nowhere")),
            ("FOLIO_WORKER_CONCURRENCY", Some("0")),
            ("FOLIO_LOG_FORMAT", Some("yaml")),
        ] {
            let mut command = env.command(binary);
            match value {
                Some(value) => command.env(variable, value),
                None => command.env_remove(variable),
            };
            let (code, lines) = exit_and_stderr(command).await;
            assert_eq!(code, 2, "{binary} with {variable}={value:?}");
            assert_eq!(lines.len(), 1, "{binary} printed {lines:?}");
            assert!(lines[0].starts_with(&format!("{binary}: setting {variable}")), "{lines:?}");
        }
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_dependency_stops_start_up_after_the_bounded_wait() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_STARTUP_TIMEOUT_SECS", "1");
    // Port 9 (discard) has nothing listening here.
    for (variable, url, dependency) in [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/folio", "postgres"),
        ("REDIS_URL", "redis://127.0.0.1:9", "redis"),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f", "rabbitmq"),
    ] {
        let mut command = env.command("folio-api");
        command.env(variable, url).env("RUST_LOG", "off");
        let (code, lines) = exit_and_stderr(command).await;
        assert_eq!(code, 1, "{variable}: {lines:?}");
        let last = lines.last().expect("a line");
        assert!(last.starts_with(&format!("folio-api: {dependency} unreachable after")), "{last}");
    }
    let mut command = env.command("folio-worker");
    command.env("AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f").env("RUST_LOG", "off");
    let (code, lines) = exit_and_stderr(command).await;
    assert_eq!(code, 1);
    assert!(
        lines.last().unwrap().starts_with("folio-worker: rabbitmq unreachable after"),
        "{lines:?}"
    );
    env.cleanup().await;
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("running") as i32;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn exit_code(mut child: Child) -> i32 {
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits within the grace period")
        .expect("wait")
        .code()
        .expect("exited, not killed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_both_binaries_cleanly_and_no_job_is_lost_or_redone() {
    let mut env = TestEnv::new().await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let grpc = [("FOLIO_GRPC_ADDR", addr.clone())];
    let api = env.start_process("folio-api", &grpc, "folio-api serving").await;
    let worker = env.start_process("folio-worker", &[], "consuming").await;

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let session = folio_proto::v1::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(folio_proto::v1::LoginRequest {
            email: folio_tests::ADMIN_EMAIL.into(),
            password: folio_tests::ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let authed = tonic::service::interceptor::InterceptedService::new(channel, folio_tests::Bearer::new(&session.access_token));
    let mut system = folio_proto::v1::system_service_client::SystemServiceClient::new(authed);
    let mut ids = Vec::new();
    for _ in 0..40 {
        let response = system
            .ping_workers(PingWorkersRequest {
                wait: Some(prost_types::Duration { seconds: 0, nanos: 0 }),
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(response.ping_id.parse::<Uuid>().unwrap());
    }
    // Stop the worker while pings are still flowing through.
    sigterm(&worker);
    assert_eq!(exit_code(worker).await, 0, "worker exit code");

    // A second worker picks up whatever the first did not finish.
    let successor = env.start_process("folio-worker", &[], "consuming").await;
    let pool = env.pool();
    eventually(Duration::from_secs(20), "every ping received", || {
        let pool = pool.clone();
        let ids = ids.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            for id in ids {
                ping::find(&mut conn, id).await.ok()??.received_at?;
            }
            Some(())
        }
    })
    .await;
    let mut conn = pool.get().await.unwrap();
    for id in &ids {
        assert_eq!(
            ping::find(&mut conn, *id).await.unwrap().unwrap().receipts,
            1,
            "ping {id} applied more than once"
        );
    }
    folio_tests::outbox_drained(&pool).await;

    sigterm(&successor);
    assert_eq!(exit_code(successor).await, 0, "successor exit code");
    // The container probe: SERVING now, and a failure once the server is gone.
    let mut probe = env.command("folio-api");
    probe.arg("health").env("FOLIO_GRPC_ADDR", &addr);
    assert_eq!(exit_and_stderr(probe).await.0, 0, "health probe while serving");
    sigterm(&api);
    assert_eq!(exit_code(api).await, 0, "api exit code");
    let mut probe = env.command("folio-api");
    probe.arg("health").env("FOLIO_GRPC_ADDR", &addr);
    let (code, lines) = exit_and_stderr(probe).await;
    assert_eq!(code, 1);
    assert!(lines[0].contains("no server at"), "{lines:?}");

    use diesel::{ExpressionMethods as _, QueryDsl as _};
    use diesel_async::RunQueryDsl as _;
    use folio_db::schema::workers;
    let running: i64 = workers::table
        .filter(workers::stopped_at.is_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(running, 0, "both workers marked themselves stopped");
    drop(conn);
    env.cleanup().await;
}

//! The README's grpcurl walkthrough, run as written (with the test server's
//! address) by bash and the real grpcurl, which asks reflection v1alpha as
//! grpcurl 1.8 does.

use std::time::Duration;

use folio_tests::TestEnv;

/// The first `sh` code block after the "Use it with grpcurl" heading.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let section = readme.split("## Use it with grpcurl").nth(1).expect("README has a grpcurl section");
    let block = section.split("```sh\n").nth(1).expect("a sh code block");
    block.split("```").next().expect("a closed code block").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_grpcurl_walkthrough_works() {
    let mut env = TestEnv::new().await;
    // The credentials scripts/up gives its bootstrap admin, as the README says.
    env.set("FOLIO_ADMIN_EMAIL", "admin@folio.local");
    env.set("FOLIO_ADMIN_PASSWORD", "change me, folio admin");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();

    let script = walkthrough();
    assert!(script.contains("ADDR=127.0.0.1:50051"), "the walkthrough sets ADDR");
    let script = script.replace("ADDR=127.0.0.1:50051", &format!("ADDR={}", api.addr));
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(&script)
            .output(),
    )
    .await
    .expect("the walkthrough finishes")
    .expect("bash and grpcurl run (scripts/test installs grpcurl)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "walkthrough failed\n{stdout}\n{stderr}");

    for expected in [
        "folio.v1.SystemService",
        "folio.v1.AuthService",
        "\"SERVING\"",
        "\"email\": \"admin@folio.local\"",
        "\"role\": \"ROLE_ADMIN\"",
        "\"name\": \"postgres\"",
        "\"received\": true",
        "\"workers\"",
        "\"email\": \"ada@example.org\"",
        "\"rpc\": \"/folio.v1.SystemService/PingWorkers\"",
        "\"source\": \"SETTING_SOURCE_ADMIN\"",
        "\"value\": \"52428800\"",
        "\"email\": \"grace@example.org\"",
        "k4.public.",
        "\"state\": \"READY\"",
        "\"sectionPath\": [",
        "## Herons",
        "The grey heron waits in the shallows.",
        "\"totalDocuments\": \"1\"",
        "\"pages\": 87",
        "GNU Bourne-Again SHell",
    ] {
        assert!(stdout.contains(expected), "walkthrough output lacks {expected}\n{stdout}");
    }
    assert_eq!(stdout.matches("\"up\": true").count(), 3, "{stdout}");
    // Login, Register and Refresh each returned a session.
    assert_eq!(
        stdout.matches("\"accessToken\"").count(),
        2,
        "Register and Refresh print sessions: {stdout}"
    );

    // Error details decode in grpcurl: reflection serves google.rpc's types.
    let refused = tokio::process::Command::new("grpcurl")
        .args([
            "-plaintext",
            "-d",
            r#"{"email": "bad", "password": "x"}"#,
            &api.addr.to_string(),
            "folio.v1.AuthService/Register",
        ])
        .output()
        .await
        .expect("grpcurl runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("Code: InvalidArgument") && stderr.contains("\"fieldViolations\""),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#""field":"email""#) && stderr.contains(r#""field":"password""#),
        "{stderr}"
    );

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

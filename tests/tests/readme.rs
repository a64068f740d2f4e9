//! The README's walkthroughs, run as written (with the test server's
//! address) by bash: the grpcurl one with the real grpcurl, which asks
//! reflection v1alpha as grpcurl 1.8 does, and the folioctl one with the
//! built folioctl.

use std::time::Duration;

use folio_tests::TestEnv;

/// The first `sh` code block after the `heading`.
fn walkthrough(heading: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README has a section {heading}"));
    let block = section.split("```sh\n").nth(1).expect("a sh code block");
    block.split("```").next().expect("a closed code block").to_owned()
}

/// Runs the walkthrough under `heading`, its `ADDR` set to `addr`, with
/// `bash -euo pipefail` as `setup` prepares it, within a minute; its standard
/// output and error, once it succeeded.
async fn run_walkthrough(heading: &str, addr: &str, setup: impl FnOnce(&mut tokio::process::Command)) -> (String, String) {
    let script = walkthrough(heading);
    assert!(script.contains("ADDR=127.0.0.1:50051"), "the walkthrough sets ADDR");
    let script = script.replace("ADDR=127.0.0.1:50051", &format!("ADDR={addr}"));
    let mut bash = tokio::process::Command::new("bash");
    bash.arg("-euo").arg("pipefail").arg("-c").arg(&script);
    setup(&mut bash);
    let output = tokio::time::timeout(Duration::from_secs(60), bash.output())
        .await
        .expect("the walkthrough finishes")
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "walkthrough failed\n{stdout}\n{stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_grpcurl_walkthrough_works() {
    let mut env = TestEnv::new().await;
    // The credentials scripts/up gives its bootstrap admin, as the README says.
    env.set("FOLIO_ADMIN_EMAIL", "admin@folio.local");
    env.set("FOLIO_ADMIN_PASSWORD", "change me, folio admin");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();

    // grpcurl comes from PATH (scripts/test installs it).
    let (stdout, _) = run_walkthrough("## Use it with grpcurl", &api.addr.to_string(), |_| {}).await;

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
        "\"codes\": [",
        "\"mfaEnabled\": true",
        "k4.public.",
        "\"state\": \"READY\"",
        "\"sectionPath\": [",
        "## Herons",
        "The grey heron waits in the shallows.",
        "| Bird | Seen |\n| --- | --- |\n| heron | 3 |",
        "\"totalDocuments\": \"1\"",
        "\"name\": \"Field team\"",
        "\"label\": \"demo\"",
        // Grace's list of what is shared with her, the one ListDocuments.
        "      \"filename\": \"notes.md\"",
        "\"pages\": 87",
        "GNU Bourne-Again SHell",
        // Ask: a cited, extractive answer, and a follow-up made standalone.
        "\"delta\": {",
        "\"generator\": \"extractive\"",
        "\"query\": \"What is its exit status? (pipeline)\"",
        "\"filename\": \"bash.pdf\"",
        "\"messageCount\": 4",
    ] {
        assert!(stdout.contains(expected), "walkthrough output lacks {expected}\n{stdout}");
    }
    assert_eq!(stdout.matches("\"up\": true").count(), 3, "{stdout}");
    // Login, Register and Refresh each returned a session.
    assert_eq!(
        stdout.matches("\"accessToken\"").count(),
        3,
        "Register, VerifyMfa and Refresh print sessions: {stdout}"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_folioctl_walkthrough_works() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_ADMIN_EMAIL", "admin@folio.local");
    env.set("FOLIO_ADMIN_PASSWORD", "change me, folio admin");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();

    // The built folioctl first on PATH, a home and a working directory of
    // the test's own (the walkthrough writes notes.md and the credentials).
    let home = std::env::temp_dir().join(format!("folioctl-readme-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&home).unwrap();
    let bin = folio_tests::binary_path("folioctl");
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let (stdout, stderr) = run_walkthrough("## Use it with folioctl", &api.addr.to_string(), |bash| {
        bash.env_clear().env("PATH", path).env("HOME", &home).current_dir(&home);
    })
    .await;

    for expected in [
        "logged in to",
        "ROLE_ADMIN",
        "workers alive  1",
        "ada@example.org",
        "/folio.v1.UserService/CreateUser",
        "SETTING_SOURCE_ADMIN",
        "52428800",
        "notes.md",
        "READY",
        "INDEX",
        "## Herons",
        "The grey heron waits in the shallows.",
        "| Bird | Seen |\n| --- | --- |\n| heron | 3 |",
        "(no dead_letters)",
        "logged out of",
    ] {
        assert!(stdout.contains(expected), "walkthrough output lacks {expected}\n{stdout}\n{stderr}");
    }
    assert!(
        stdout.lines().any(|line| line.split_whitespace().eq(["received", "true"])),
        "the ping was received: {stdout}"
    );
    // The session was saved where the README says, and logout forgot it.
    let credentials = std::fs::read_to_string(home.join(".config/folio/credentials.json")).expect("credentials saved");
    assert!(!credentials.contains(&api.addr.to_string()), "{credentials}");

    let _ = std::fs::remove_dir_all(&home);
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

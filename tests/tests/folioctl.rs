//! folioctl end to end: the built binary against a real api-server and
//! worker, as an operator runs it. Signing in (the 0600 credentials file),
//! the admin commands and their exit codes, documents from upload with
//! `--watch` (also under a pseudo-terminal, where the progress bars draw) to
//! download and search, `--json` output, and the transparent refresh of an
//! access token the server no longer takes, also under a watch stream the
//! server ends when its token expires.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use folio_proto::v1::{ListAuditEventsRequest, LogoutRequest, WhoAmIRequest};
use folio_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, TestEnv, binary_path, eventually, totp};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// Exit codes from folioctl's documented table (10 + the gRPC code).
const EXIT_DOCUMENT_FAILED: i32 = 3;
const EXIT_NOT_FOUND: i32 = 15;
const EXIT_PERMISSION_DENIED: i32 = 17;
const EXIT_UNAUTHENTICATED: i32 = 26;

/// folioctl for one server, with a config directory of its own.
struct Ctl {
    server: String,
    dir: PathBuf,
}

impl Ctl {
    fn new(server: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("folioctl-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Ctl {
            server: server.to_owned(),
            dir,
        }
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    fn credentials(&self) -> PathBuf {
        self.config_dir().join("credentials.json")
    }

    /// The saved session of this server.
    fn saved(&self) -> Value {
        let file: Value = serde_json::from_str(&std::fs::read_to_string(self.credentials()).unwrap()).unwrap();
        file["servers"][&self.server].clone()
    }

    /// The variables folioctl runs with, and nothing else from the test.
    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", self.dir.display().to_string()),
            ("FOLIO_SERVER", self.server.clone()),
            ("FOLIOCTL_CONFIG_DIR", self.config_dir().display().to_string()),
        ]
    }

    async fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(binary_path("folioctl"));
        command
            .env_clear()
            .envs(self.vars())
            .envs(extra.iter().copied())
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(WAIT, command.output())
            .await
            .unwrap_or_else(|_| panic!("folioctl {args:?} did not finish"))
            .expect("folioctl runs")
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[]).await
    }

    /// Runs and asserts success; the standard output.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(output.status.success(), "folioctl {args:?}: {}", describe(&output));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs with `--json` and parses the standard output.
    async fn json(&self, args: &[&str]) -> Value {
        let args: Vec<&str> = std::iter::once("--json").chain(args.iter().copied()).collect();
        let stdout = self.ok(&args).await;
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("folioctl {args:?} printed no JSON ({e}): {stdout}"))
    }

    async fn login(&self, email: &str, password: &str) {
        let output = self.run_with(&["login", "--email", email], &[("FOLIO_PASSWORD", password)]).await;
        assert!(output.status.success(), "login: {}", describe(&output));
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn markdown(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let bytes = b"# Field notes\n\n## Herons\n\nThe grey heron waits in the shallows for fish.\n\n## Kingfishers\n\nA flash of blue over the river.\n".to_vec();
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folioctl_signs_in_and_runs_the_admin_commands_with_exit_codes_by_status() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let admin = Ctl::new(&api.url());

    // Not signed in yet: UNAUTHENTICATED's exit code, and what to do.
    let output = admin.run(&["whoami"]).await;
    assert_eq!(output.status.code(), Some(EXIT_UNAUTHENTICATED), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("folioctl login"));

    admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mode = std::fs::metadata(admin.credentials()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the credentials file is the owner's only");
    assert_eq!(admin.saved()["email"], ADMIN_EMAIL);
    assert!(admin.saved()["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));

    let whoami = admin.ok(&["whoami"]).await;
    assert!(whoami.contains(ADMIN_EMAIL) && whoami.contains("ROLE_ADMIN"), "{whoami}");
    let whoami = admin.json(&["whoami"]).await;
    assert_eq!(
        (whoami["email"].as_str(), whoami["role"].as_str()),
        (Some(ADMIN_EMAIL), Some("ROLE_ADMIN"))
    );

    // Settings: set, read back as set by an admin, reset.
    let set = admin.ok(&["settings", "set", "max_upload_bytes=52428800"]).await;
    assert!(set.contains("52428800") && set.contains("SETTING_SOURCE_ADMIN"), "{set}");
    let settings = admin.json(&["settings", "get"]).await;
    let upload_limit = settings["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "max_upload_bytes")
        .cloned()
        .unwrap();
    assert_eq!(upload_limit["value"], 52_428_800);
    assert_eq!(upload_limit["source"], "SETTING_SOURCE_ADMIN");
    let reset = admin.json(&["settings", "reset", "max_upload_bytes"]).await;
    assert_ne!(reset["settings"][0]["source"], "SETTING_SOURCE_ADMIN", "{reset}");
    let output = admin.run(&["settings", "set", "no_such_setting=1"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));

    // Retention: a setting, a label's rule, and its removal.
    let set = admin.json(&["settings", "set", "retention_original_days=90"]).await;
    let original = set["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "retention_original_days")
        .cloned()
        .unwrap();
    assert_eq!(original["value"], 90);
    let rules = admin.json(&["settings", "retain", "legal", "--original-days", "0"]).await;
    assert_eq!(
        (
            rules["retention_rules"][0]["label"].as_str(),
            rules["retention_rules"][0]["original_days"].as_i64()
        ),
        (Some("legal"), Some(0))
    );
    assert!(admin.ok(&["settings", "rules"]).await.contains("legal"));
    let rules = admin.json(&["settings", "unretain", "legal"]).await;
    assert_eq!(rules["retention_rules"].as_array().map(Vec::len), Some(0), "{rules}");
    admin.ok(&["settings", "reset", "retention_original_days"]).await;

    // Providers: shown without a key, tried, chosen and reset.
    let providers = admin.json(&["settings", "providers"]).await;
    assert_eq!(
        (
            providers["providers"][0]["role"].as_str(),
            providers["providers"][0]["kind"].as_str()
        ),
        (Some("embedder"), Some("hash"))
    );
    let tested = admin.json(&["settings", "test-provider", "embedder"]).await;
    assert_eq!(
        (tested["ok"].as_bool(), tested["dimension"].as_i64()),
        (Some(true), Some(384)),
        "{tested}"
    );
    let output = admin
        .run(&[
            "settings",
            "test-provider",
            "reranker",
            "--kind",
            "tei",
            "--url",
            "http://127.0.0.1:9",
        ])
        .await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "a candidate that does not answer: {}",
        describe(&output)
    );
    let chosen = admin.json(&["settings", "provider", "reranker", "--kind", "none"]).await;
    assert_eq!(
        (chosen["providers"][1]["kind"].as_str(), chosen["providers"][1]["source"].as_str()),
        (Some("none"), Some("SETTING_SOURCE_ADMIN"))
    );
    admin.ok(&["settings", "reset", "reranker"]).await;
    let providers = admin.json(&["settings", "providers"]).await;
    assert_eq!(providers["providers"][1]["kind"], "lexical", "{providers}");

    // Accounts: create a member, who may not read the deployment's statistics.
    let created = admin
        .json(&[
            "users",
            "create",
            "--email",
            "ada@example.org",
            "--password",
            "a long enough passphrase",
            "--role",
            "member",
        ])
        .await;
    assert_eq!(created["role"], "ROLE_MEMBER");
    let ada_id = created["id"].as_str().unwrap().to_owned();
    let users = admin.ok(&["users", "list"]).await;
    assert!(users.contains("ada@example.org") && users.contains(ADMIN_EMAIL), "{users}");
    let renamed = admin.json(&["users", "update", &ada_id, "--display-name", "Ada L"]).await;
    assert_eq!(renamed["display_name"], "Ada L");
    let weighted = admin.json(&["users", "update", &ada_id, "--share-weight", "3"]).await;
    assert_eq!(weighted["share_weight"], 3);
    let back = admin.json(&["users", "update", &ada_id, "--share-weight", "default"]).await;
    assert!(back["share_weight"].is_null(), "{back}");

    let ada = Ctl::new(&api.url());
    ada.login("ada@example.org", "a long enough passphrase").await;
    let denied = ada.run(&["stats"]).await;
    assert_eq!(denied.status.code(), Some(EXIT_PERMISSION_DENIED), "{}", describe(&denied));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("PERMISSION_DENIED") && stderr.contains("reason: ROLE_REQUIRED"),
        "{stderr}"
    );
    let denied = ada.run(&["--json", "stats"]).await;
    let error: Value = serde_json::from_slice(&denied.stderr).unwrap();
    assert_eq!(error["error"]["code"], "PERMISSION_DENIED");
    assert_eq!(error["error"]["exit_code"], EXIT_PERMISSION_DENIED);

    // A bad request names its fields.
    let refused = admin.run(&["users", "create", "--email", "not an email", "--password", "x"]).await;
    assert_eq!(refused.status.code(), Some(13), "INVALID_ARGUMENT: {}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("field email") && stderr.contains("field password"), "{stderr}");

    // NOT_FOUND has its own exit code.
    let missing = admin.run(&["users", "get", &uuid::Uuid::now_v7().to_string()]).await;
    assert_eq!(missing.status.code(), Some(EXIT_NOT_FOUND), "{}", describe(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NOT_FOUND"));

    // The statistics, the workers, a ping through the queue, the services.
    let stats = admin.json(&["stats", "--top-by", "activity"]).await;
    assert_eq!(stats["workers_alive"], 1, "{stats}");
    assert_eq!(stats["days"].as_array().unwrap().len(), 30);
    assert!(stats["top_users"].as_array().is_some_and(|top| !top.is_empty()), "{stats}");
    let table = admin.ok(&["stats"]).await;
    assert!(table.contains("workers alive") && table.contains("ROLE_ADMIN"), "{table}");
    let workers = admin.json(&["workers"]).await;
    assert_eq!(workers["workers"].as_array().unwrap().len(), 1, "{workers}");
    let ping = admin.json(&["workers", "ping", "--wait", "10"]).await;
    assert_eq!(ping["received"], true, "{ping}");
    let registered = admin
        .json(&["services", "register", "folio-api", &api.url(), "--kind", "grpc"])
        .await;
    assert_eq!(registered["status"], "SERVICE_STATUS_UP", "{registered}");
    let services = ada.ok(&["services", "list"]).await;
    assert!(
        services.contains("folio-api") && services.contains("SERVICE_STATUS_UP"),
        "{services}"
    );
    admin.ok(&["services", "unregister", "folio-api"]).await;
    let letters = admin.json(&["dead-letters", "list"]).await;
    assert_eq!(letters["dead_letters"], Value::Array(vec![]));

    // The audit log has Ada's refused call (its writer runs in the background).
    eventually(WAIT, "Ada's refused GetSystemStats in the audit log", || async {
        let audit = admin.json(&["audit", "--outcome", "PERMISSION_DENIED", "--actor", &ada_id]).await;
        let events = audit["events"].as_array().cloned().unwrap_or_default();
        events
            .iter()
            .any(|e| e["rpc"] == "/folio.v1.SystemService/GetSystemStats")
            .then_some(())
    })
    .await;

    let completions = admin.ok(&["completions", "bash"]).await;
    assert!(
        completions.contains("_folioctl") && completions.contains("dead-letters"),
        "{completions}"
    );
    let help = admin.ok(&["--help"]).await;
    assert!(help.contains("Examples:") && help.contains("15 NOT_FOUND"), "{help}");

    // Logging out revokes the session and forgets it here.
    let token = admin.saved()["access_token"].as_str().unwrap().to_owned();
    admin.ok(&["logout"]).await;
    assert_eq!(admin.saved(), Value::Null);
    let revoked = api.auth_as(&token).await.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(revoked.code(), tonic::Code::Unauthenticated);
    let output = admin.run(&["whoami"]).await;
    assert_eq!(output.status.code(), Some(EXIT_UNAUTHENTICATED));

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folioctl_uploads_with_progress_bars_and_reads_documents_back() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let ctl = Ctl::new(&api.url());
    ctl.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (notes, bytes) = markdown(&ctl.dir, "notes.md");
    let broken = ctl.dir.join("broken.pdf");
    std::fs::write(&broken, b"%PDF-1.7\nnot a body\n").unwrap();

    // Without a terminal no bar is drawn; the documents are printed at their end.
    let upload = ctl
        .run(&["documents", "upload", notes.to_str().unwrap(), "--labels", "demo,birds", "--watch"])
        .await;
    assert!(upload.status.success(), "{}", describe(&upload));
    let stdout = String::from_utf8_lossy(&upload.stdout);
    assert!(stdout.contains("notes.md") && stdout.contains("READY"), "{stdout}");

    // A document that fails: --watch says so in its exit code.
    let failed = ctl.run(&["documents", "upload", broken.to_str().unwrap(), "--watch"]).await;
    assert_eq!(failed.status.code(), Some(EXIT_DOCUMENT_FAILED), "{}", describe(&failed));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("FAILED"));

    // Under a pseudo-terminal the bar draws: stages, percent, READY.
    let heron = ctl.dir.join("heron.md");
    std::fs::write(&heron, b"# Herons\n\nA heron of its own, so not a duplicate of notes.md.\n").unwrap();
    let command = format!("{} documents upload {} --watch", binary_path("folioctl").display(), heron.display());
    let mut script = tokio::process::Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .envs(ctl.vars())
        .env("TERM", "xterm")
        .current_dir(&ctl.dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let terminal = tokio::time::timeout(WAIT, script.output())
        .await
        .unwrap()
        .expect("script (util-linux) runs");
    assert!(terminal.status.success(), "{}", describe(&terminal));
    let screen = String::from_utf8_lossy(&terminal.stdout);
    assert!(screen.contains("heron.md ["), "a bar labelled with the file: {screen:?}");
    assert!(screen.contains("100% READY"), "the bar ends full at READY: {screen:?}");
    assert!(
        ["PROCESSING PARSE", "PROCESSING EMBED", "QUEUED STORE"]
            .iter()
            .any(|s| screen.contains(s)),
        "the bar showed progress before the end: {screen:?}"
    );
    assert!(screen.contains('\u{1b}'), "drawn with terminal escapes: {screen:?}");
    let table = screen.split("100% READY").last().unwrap();
    assert!(
        table.contains("heron.md") && table.contains("READY"),
        "then the document: {screen:?}"
    );
    assert!(!table.contains("notes.md"), "{screen:?}");

    // List, get, events, download: the bytes come back as uploaded.
    let listed = ctl.json(&["documents", "list", "--label", "demo"]).await;
    let documents = listed["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 1, "{listed}");
    let id = documents[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(documents[0]["state"], "READY");
    assert_eq!(documents[0]["labels"], serde_json::json!(["birds", "demo"]), "sorted by the server");
    assert!(documents[0]["created_at"].as_str().unwrap().ends_with('Z'), "RFC 3339 in UTC");
    let table = ctl.ok(&["documents", "list", "--state", "failed"]).await;
    assert!(table.contains("broken.pdf") && !table.contains("notes.md"), "{table}");
    let got = ctl.ok(&["documents", "get", &id]).await;
    assert!(got.contains("READY") && got.contains("notes.md"), "{got}");
    let events = ctl.json(&["documents", "events", &id]).await;
    let events = events["events"].as_array().unwrap();
    assert!(events.len() >= 5, "{events:?}");
    assert_eq!(events.last().unwrap()["state"], "READY");
    assert!(events.iter().any(|e| e["stage"] == "PARSE"));
    let out = ctl.dir.join("downloaded.md");
    ctl.ok(&["documents", "download", &id, "-o", out.to_str().unwrap()]).await;
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let markdown = ctl.ok(&["documents", "download", &id, "--format", "markdown"]).await;
    assert!(markdown.contains("## Herons"), "{markdown}");

    // Search finds it.
    let found = ctl.ok(&["search", "grey heron shallows"]).await;
    assert!(found.contains("notes.md") || found.contains("heron.md"), "{found}");
    let found = ctl.json(&["search", "grey heron", "--label", "demo"]).await;
    assert_eq!(found["results"][0]["document_id"], id.as_str(), "{found}");

    // Retry the failed one, delete it, and it is gone.
    let broken_id = ctl.json(&["documents", "list", "--state", "failed"]).await["documents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retried = ctl.json(&["documents", "retry", &broken_id]).await;
    assert_eq!(retried["attempt"], 2, "{retried}");
    ctl.ok(&["documents", "delete", &broken_id]).await;
    let gone = ctl.run(&["documents", "get", &broken_id]).await;
    assert_eq!(gone.status.code(), Some(EXIT_NOT_FOUND), "{}", describe(&gone));

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folioctl_refreshes_an_access_token_the_server_refuses_or_that_expired() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let ctl = Ctl::new(&api.url());
    ctl.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let first = ctl.saved();

    // A token the server refuses (here: not a token at all): the call is
    // answered UNAUTHENTICATED, folioctl refreshes and retries once.
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(ctl.credentials()).unwrap()).unwrap();
    file["servers"][&ctl.server]["access_token"] = Value::from("v4.public.not-a-token");
    std::fs::write(ctl.credentials(), serde_json::to_vec(&file).unwrap()).unwrap();
    let whoami = ctl.ok(&["whoami"]).await;
    assert!(whoami.contains(ADMIN_EMAIL), "{whoami}");
    let second = ctl.saved();
    assert_ne!(second["refresh_token"], first["refresh_token"], "a new pair was saved");
    assert_ne!(second["access_token"], "v4.public.not-a-token");
    assert_eq!(std::fs::metadata(ctl.credentials()).unwrap().permissions().mode() & 0o777, 0o600);
    let admin_token = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token;
    let users = api.users_as(&admin_token).await;
    let refreshes = eventually(WAIT, "the refresh in the audit log", || {
        let mut users = users.clone();
        async move {
            let events = users
                .list_audit_events(ListAuditEventsRequest {
                    rpc: "/folio.v1.AuthService/Refresh".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .events;
            (!events.is_empty()).then_some(events)
        }
    })
    .await;
    assert_eq!(refreshes.len(), 1, "one refresh: {refreshes:?}");
    assert_eq!(refreshes[0].outcome, "OK");

    // An access token that expired: a server issuing one-second tokens.
    env.set("FOLIO_ACCESS_TOKEN_TTL_SECS", "1");
    let short = env.spawn_api().await;
    let ctl = Ctl::new(&short.url());
    ctl.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let saved = ctl.saved();
    let token = saved["access_token"].as_str().unwrap().to_owned();
    // Wait until the server itself refuses the saved token.
    eventually(WAIT, "the saved access token to expire", || {
        let (short, token) = (&short, token.clone());
        async move {
            let answer = short.auth_as(&token).await.who_am_i(WhoAmIRequest {}).await;
            matches!(answer, Err(status) if status.code() == tonic::Code::Unauthenticated).then_some(())
        }
    })
    .await;
    let whoami = ctl.json(&["whoami"]).await;
    assert_eq!(whoami["email"], ADMIN_EMAIL);
    assert_ne!(ctl.saved()["access_token"], saved["access_token"]);
    assert_ne!(ctl.saved()["refresh_token"], saved["refresh_token"]);

    // A session revoked on the server cannot be refreshed: log in again.
    let revoked = ctl.saved()["access_token"].as_str().unwrap().to_owned();
    short.auth_as(&revoked).await.logout(LogoutRequest {}).await.unwrap();
    let output = ctl.run(&["whoami"]).await;
    assert_eq!(output.status.code(), Some(EXIT_UNAUTHENTICATED), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("folioctl login"));

    short.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folioctl_watch_refreshes_and_resumes_when_the_server_ends_it_for_an_expired_token() {
    let mut env = TestEnv::new().await;
    // One-second access tokens, and no worker yet: the document waits QUEUED
    // while the watch outlives the token it opened with.
    env.set("FOLIO_ACCESS_TOKEN_TTL_SECS", "1");
    let api = env.spawn_api().await;
    let ctl = Ctl::new(&api.url());
    ctl.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (notes, _) = markdown(&ctl.dir, "notes.md");
    let uploaded = ctl.json(&["documents", "upload", notes.to_str().unwrap()]).await;
    let id = uploaded["documents"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(uploaded["documents"][0]["state"], "QUEUED");

    // How many refreshes the audit log holds; 0 when this probe's own
    // one-second token ran out before it was used (the next probe retries).
    let refreshes = async || {
        let token = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token;
        let listed = api
            .users_as(&token)
            .await
            .list_audit_events(ListAuditEventsRequest {
                rpc: "/folio.v1.AuthService/Refresh".into(),
                page_size: 500,
                ..Default::default()
            })
            .await;
        match listed {
            Ok(listed) => listed.into_inner().events.len(),
            Err(status) if status.code() == tonic::Code::Unauthenticated => 0,
            Err(status) => panic!("ListAuditEvents: {status:?}"),
        }
    };

    let mut watch = tokio::process::Command::new(binary_path("folioctl"));
    watch
        .env_clear()
        .envs(ctl.vars())
        .args(["--json", "documents", "watch", &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let watch = watch.spawn().expect("folioctl runs");
    // The upload made one call and the watch makes two before its stream
    // opens, so together they refresh at most three times ahead of expiry; a
    // fourth refresh is one the server's ending of the stream (its token
    // expired) called for, after which the watch resumes.
    eventually(WAIT, "a refresh after the watch's token expired", || async {
        (refreshes().await >= 4).then_some(())
    })
    .await;

    let worker = env.spawn_worker();
    let output = tokio::time::timeout(WAIT, watch.wait_with_output())
        .await
        .expect("the watch ends at READY")
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["state"], "READY", "{document}");

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folioctl_logs_in_with_a_second_factor() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let email = member.user.unwrap().email;
    let secret = api.turn_on_mfa(&member.access_token).await;

    let ctl = Ctl::new(&api.url());
    let password = [("FOLIO_PASSWORD", "a member's passphrase")];
    // No code given and none to read: told how to give one.
    let output = ctl.run_with(&["login", "--email", &email], &password).await;
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--code"), "{}", describe(&output));
    let next = totp(&secret, 1);
    let output = ctl.run_with(&["login", "--email", &email, "--code", &next], &password).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(ctl.json(&["whoami"]).await["email"], email.as_str());
    // The same code again is refused: it works once.
    let output = ctl
        .run_with(&["login", "--email", &email], &[password[0], ("FOLIO_MFA_CODE", &next)])
        .await;
    assert_eq!(output.status.code(), Some(EXIT_UNAUTHENTICATED), "{}", describe(&output));
    api.stop().await.unwrap();
    env.cleanup().await;
}

//! Metrics, as an operator runs them: folio-api and folio-worker as their own
//! processes, each serving `/metrics` on its own `FOLIO_METRICS_ADDR`, scraped
//! by a real Prometheus (Debian's package; scripts/test installs it) with the
//! README's scrape configuration and alert rules. The test uploads documents,
//! holds a watch stream open and fails a login, then asks Prometheus' HTTP API
//! for every series the README lists; promtool checks both outputs, the
//! configuration and the rules.

use std::time::Duration;

use folio_proto::v1::{LoginRequest, WatchDocumentsRequest, document_service_client::DocumentServiceClient};
use folio_tests::{
    TestEnv,
    clients::Bearer,
    helpers::{eventually_every, upload_ready},
    processes::spawn_api_process,
};
use serde_json::Value;
use tonic::service::interceptor::InterceptedService;

/// The `n`th yaml block of the README's "Monitor it" section.
fn readme_yaml(n: usize) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let section = readme.split("## Monitor it").nth(1).expect("README has a Monitor it section");
    let section = section.split("\n## ").next().expect("the section");
    let block = section.split("```yaml\n").nth(n + 1).expect("a yaml block");
    block.split("```").next().expect("a closed code block").to_owned()
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("address").to_string()
}

/// Runs promtool with `args`, feeding it `input`; panics with its output
/// unless it succeeds.
async fn promtool(args: &[&str], input: &str) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/test installs Debian's prometheus package)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write to promtool");
    drop(stdin);
    let output = child.wait_with_output().await.expect("promtool's output");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Percent-encodes a PromQL query for a URL.
fn encoded(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asks Prometheus at `base` until `query` returns a sample whose value
/// `accept` takes (every 250 ms, for up to 60 s); returns that value.
async fn sample(http: &reqwest::Client, base: &str, query: &str, accept: impl Fn(f64) -> bool) -> f64 {
    let url = format!("{base}/api/v1/query?query={}", encoded(query));
    eventually_every(
        Duration::from_millis(250),
        Duration::from_secs(60),
        &format!("Prometheus to answer {query}"),
        || {
            let (http, url, accept) = (http.clone(), url.clone(), &accept);
            async move {
                let answer: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                let results = answer["data"]["result"].as_array()?;
                results
                    .iter()
                    .filter_map(|result| result["value"][1].as_str()?.parse::<f64>().ok())
                    .find(|value| accept(*value))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_both_binaries_and_finds_every_series_and_alert_the_readme_lists() {
    let mut env = TestEnv::new().await;
    let (api_metrics, worker_metrics, prometheus_addr) = (free_addr(), free_addr(), free_addr());
    env.set("FOLIO_METRICS_ADDR", api_metrics.clone());
    let api = spawn_api_process(&env).await;
    let worker = env
        .start_process(
            "folio-worker",
            &[("FOLIO_METRICS_ADDR", worker_metrics.clone())],
            "folio-worker started",
        )
        .await;

    // Prometheus with the README's two files, scraping every second.
    let config = readme_yaml(0);
    let rules = readme_yaml(1);
    for (from, _) in [
        ("127.0.0.1:9464", api_metrics.as_str()),
        ("127.0.0.1:9465", worker_metrics.as_str()),
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
    ] {
        assert!(config.contains(from), "the README's prometheus.yml has {from}");
    }
    let config = config
        .replace("127.0.0.1:9464", &api_metrics)
        .replace("127.0.0.1:9465", &worker_metrics)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    let dir = std::env::temp_dir().join(format!("folio-prometheus-{}", env.database));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prometheus.yml"), &config).unwrap();
    std::fs::write(dir.join("folio-alerts.yml"), &rules).unwrap();
    let config_path = dir.join("prometheus.yml");
    let config_path = config_path.to_str().unwrap();
    promtool(&["check", "config", config_path], "").await;
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={config_path}"))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={prometheus_addr}"))
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus runs (scripts/test installs Debian's prometheus package)");
    let base = format!("http://{prometheus_addr}");
    folio_core::startup::install_tls_provider();
    let http = reqwest::Client::new();

    // Work for every series: documents through the pipeline, a watch stream
    // held open, a login refused.
    let authed = InterceptedService::new(api.channel.clone(), Bearer::new(&api.admin_token));
    let mut documents = DocumentServiceClient::new(authed);
    // Held open until its gauge has been seen.
    let watch = documents
        .watch_documents(WatchDocumentsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    for n in 0..2 {
        let text = format!("# Metrics {n}\n\nPrometheus scrapes folio while it works on document {n}.\n");
        upload_ready(&mut documents, &format!("metrics-{n}.md"), text.as_bytes(), Duration::from_secs(60)).await;
    }
    let refused = folio_proto::v1::auth_service_client::AuthServiceClient::new(api.channel.clone())
        .login(LoginRequest {
            email: "nobody@folio.test".into(),
            password: "not the password".into(),
        })
        .await
        .expect_err("a wrong password is refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let at_least = |n: f64| move |value: f64| value >= n;
    let any = |_: f64| true;
    sample(&http, &base, r#"up{job="folio-api"}"#, at_least(1.0)).await;
    sample(&http, &base, r#"up{job="folio-worker"}"#, at_least(1.0)).await;
    // The api-server's.
    sample(
        &http,
        &base,
        r#"folio_rpc_requests_total{job="folio-api",service="folio.v1.DocumentService",method="UploadDocument",code="OK"}"#,
        at_least(2.0),
    )
    .await;
    sample(
        &http,
        &base,
        r#"folio_rpc_requests_total{service="folio.v1.AuthService",method="Login",code="UNAUTHENTICATED"}"#,
        at_least(1.0),
    )
    .await;
    sample(
        &http,
        &base,
        r#"folio_rpc_duration_seconds_bucket{service="folio.v1.DocumentService",method="UploadDocument",le="+Inf"}"#,
        at_least(2.0),
    )
    .await;
    sample(&http, &base, "folio_watch_streams_open", at_least(1.0)).await;
    sample(&http, &base, "folio_outbox_pending_rows", any).await;
    sample(&http, &base, "folio_outbox_oldest_pending_age_seconds", any).await;
    sample(&http, &base, "folio_outbox_publish_confirm_seconds_count", at_least(2.0)).await;
    sample(&http, &base, r#"folio_documents{state="READY"}"#, |v| v == 2.0).await;
    sample(&http, &base, r#"folio_documents{state="FAILED"}"#, |v| v == 0.0).await;
    sample(&http, &base, "folio_index_backlog_chunks", any).await;
    sample(&http, &base, r#"folio_queue_messages{queue="process"}"#, any).await;
    sample(&http, &base, r#"folio_queue_consumers{queue="process"}"#, at_least(1.0)).await;
    sample(&http, &base, "folio_audit_rows_written_total", at_least(1.0)).await;
    for name in [
        "folio_audit_rows_delayed_total",
        "folio_audit_rows_spilled_total",
        "folio_audit_rows_lost_total",
        "folio_redis_reconnects_total",
    ] {
        sample(&http, &base, name, any).await;
    }
    // The worker's.
    sample(
        &http,
        &base,
        r#"folio_jobs_total{job="folio-worker",kind="process_document",outcome="done"}"#,
        at_least(2.0),
    )
    .await;
    for stage in ["PARSE", "CHUNK", "EMBED", "INDEX"] {
        let query = format!(r#"folio_stage_duration_seconds_count{{job="folio-worker",stage="{stage}"}}"#);
        sample(&http, &base, &query, at_least(2.0)).await;
    }
    sample(&http, &base, r#"folio_jobs_in_flight{job="folio-worker"}"#, any).await;
    // Both.
    for job in ["folio-api", "folio-worker"] {
        for name in [
            "folio_db_pool_connections",
            "folio_db_pool_waiting",
            "folio_rabbitmq_reconnects_total",
        ] {
            sample(&http, &base, &format!(r#"{name}{{job="{job}"}}"#), any).await;
        }
    }
    drop(watch);

    // The README's three alerts are loaded and evaluate without error.
    let rules_url = format!("{base}/api/v1/rules");
    let healthy = eventually_every(
        Duration::from_millis(250),
        Duration::from_secs(30),
        "the alert rules to be evaluated",
        || {
            let (http, url) = (http.clone(), rules_url.clone());
            async move {
                let answer: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                let rules: Vec<(String, String)> = answer["data"]["groups"]
                    .as_array()?
                    .iter()
                    .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
                    .map(|rule| {
                        (
                            rule["name"].as_str().unwrap_or("").to_owned(),
                            rule["health"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect();
                (rules.len() == 3 && rules.iter().all(|(_, health)| health == "ok")).then_some(rules)
            }
        },
    )
    .await;
    let names: Vec<&str> = healthy.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["FolioOutboxStuck", "FolioDocumentsFailing", "FolioNoWorkers"]);
    // A worker consumes the queue and nothing waits: none of them fires.
    let firing: Value = http
        .get(format!("{base}/api/v1/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(firing["data"]["alerts"], serde_json::json!([]), "no alert fires");

    // promtool's lint on what each binary serves.
    for addr in [&api_metrics, &worker_metrics] {
        let text = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        promtool(&["check", "metrics"], &text).await;
    }
    promtool(&["check", "rules", dir.join("folio-alerts.yml").to_str().unwrap()], "").await;

    let _ = prometheus.kill().await;
    drop((api, worker));
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}

//! An S3-compatible server for the `s3://` blob store tests: moto's server
//! (the PyPI package `moto[server]`, which scripts/test installs), one child
//! process per test on a free port, with a bucket of the test's own. folio's
//! real S3 client (`object_store`) talks to it over HTTP; the test reads the
//! bucket back with plain HTTP requests, not through that client.

use std::{process::Stdio, time::Duration};

use crate::helpers::eventually;

/// A running S3 server with one bucket.
pub struct S3Server {
    _child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub bucket: String,
    http: reqwest::Client,
}

impl S3Server {
    /// Starts the server and creates a bucket.
    pub async fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("address")
            .port();
        let child = tokio::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs moto[server])");
        let endpoint = format!("http://127.0.0.1:{port}");
        folio_core::startup::install_tls_provider();
        let http = reqwest::Client::new();
        eventually(Duration::from_secs(30), "the S3 server answers", || {
            let request = http.get(&endpoint).send();
            async move { request.await.ok().map(|_| ()) }
        })
        .await;
        let bucket = format!("folio-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let created = http.put(format!("{endpoint}/{bucket}")).send().await.expect("create bucket");
        assert!(created.status().is_success(), "create bucket: {}", created.status());
        S3Server {
            _child: child,
            endpoint,
            bucket,
            http,
        }
    }

    /// The variables that point folio's blob store at this bucket, under
    /// `prefix`.
    pub fn vars(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("FOLIO_BLOB_URL", format!("s3://{}/{prefix}", self.bucket)),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "folio-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "folio-test-secret".into()),
        ]
    }

    /// The keys under `prefix` (ListObjectsV2; fewer than 1,000 in a test).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let body = self.get_bucket(&format!("list-type=2&prefix={prefix}")).await;
        tag_values(&body, "Key")
    }

    /// The multipart uploads begun and neither completed nor aborted.
    pub async fn pending_multipart_uploads(&self) -> Vec<String> {
        let body = self.get_bucket("uploads").await;
        tag_values(&body, "UploadId")
    }

    /// The size in bytes the listing gives for `key`, if it exists.
    pub async fn size(&self, key: &str) -> Option<u64> {
        let body = self.get_bucket(&format!("list-type=2&prefix={key}")).await;
        body.split("<Contents>")
            .skip(1)
            .find(|entry| tag_values(entry, "Key").first().map(String::as_str) == Some(key))
            .and_then(|entry| tag_values(entry, "Size").first()?.parse().ok())
    }

    async fn get_bucket(&self, query: &str) -> String {
        let response = self
            .http
            .get(format!("{}/{}?{query}", self.endpoint, self.bucket))
            .send()
            .await
            .expect("bucket request");
        assert!(response.status().is_success(), "{query}: {}", response.status());
        response.text().await.expect("bucket response")
    }
}

/// The text of every `<tag>…</tag>` in `xml` (S3's listings carry keys and ids
/// as plain text; keys folio makes need no unescaping).
fn tag_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value.to_owned()))
        .collect()
}

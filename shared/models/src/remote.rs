//! Calling a model server over HTTP: the one place for what every HTTP
//! embedder and reranker needs, so they differ only in their JSON. A
//! [`Remote`] posts JSON to one endpoint with a per-request timeout, at most
//! `concurrency` requests in flight (the process shares one `Remote` per
//! provider), and retries with exponential backoff on 429 (honouring
//! `Retry-After`), 408, 5xx and connection failures. Every error names the
//! endpoint and what it answered, so a log line says which server failed how.

use std::{sync::Arc, time::Duration};

use reqwest::{StatusCode, header::RETRY_AFTER};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use folio_core::{
    config::ApiKey,
    startup::{install_tls_provider, one_line},
};

/// How many characters of a response body an error quotes.
const EXCERPT_CHARS: usize = 200;

/// How a failed request is tried again.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait before the second try; each later wait doubles.
    pub first_delay: Duration,
    /// The longest wait between tries. A server that asks (`Retry-After`) for
    /// longer is not waited for: the call fails as transient at once, and the
    /// job's own retry comes back later.
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// Why a call failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteError {
    /// Worth trying again later: timeouts, 429, 5xx, connection failures.
    Transient(String),
    /// Retrying will not help: any other 4xx, or an answer we cannot read.
    Permanent(String),
}

/// One endpoint of a model server.
#[derive(Clone)]
pub struct Remote {
    client: reqwest::Client,
    endpoint: String,
    api_key: Option<ApiKey>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    retry: Retry,
}

/// One try's failure.
enum Failure {
    Retry { message: String, after: Option<Duration> },
    Permanent(String),
}

impl Remote {
    /// A client for `endpoint` (the full URL requests are posted to).
    pub fn new(endpoint: String, api_key: Option<ApiKey>, timeout: Duration, concurrency: usize, retry: Retry) -> Result<Self, String> {
        install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("folio/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build an HTTP client: {}", chain(&error)))?;
        Ok(Remote {
            client,
            endpoint,
            api_key,
            timeout,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            retry,
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Posts `body` as JSON and decodes the JSON answer, retrying as [`Retry`]
    /// says.
    pub async fn post_json<T: DeserializeOwned>(&self, body: &impl Serialize) -> Result<T, RemoteError> {
        self.with_retries(|| self.try_json(body)).await
    }

    /// Posts `body` as JSON and hands back the successful answer unread, for
    /// a body that streams (server-sent events). Retries as [`Retry`] says
    /// until the server answers with success; nothing is retried once the
    /// caller reads. The answer holds its slot of the concurrency limit until
    /// it is dropped, and dropping it closes the connection, which is how a
    /// server learns that nobody reads any more.
    pub async fn open(&self, body: &impl Serialize) -> Result<Opened, RemoteError> {
        self.with_retries(|| self.try_open(body)).await
    }

    async fn with_retries<T, F, Fut>(&self, mut once: F) -> Result<T, RemoteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut delay = self.retry.first_delay;
        let mut attempt = 1;
        loop {
            let (message, after) = match once().await {
                Ok(value) => return Ok(value),
                Err(Failure::Permanent(message)) => return Err(RemoteError::Permanent(message)),
                Err(Failure::Retry { message, after }) => (message, after),
            };
            if attempt >= self.retry.attempts {
                return Err(RemoteError::Transient(format!("{message} (gave up after {attempt} tries)")));
            }
            let wait = after.unwrap_or(delay);
            if wait > self.retry.max_delay {
                return Err(RemoteError::Transient(format!("{message} (asked to retry after {wait:?})")));
            }
            tracing::warn!(endpoint = %self.endpoint, attempt, error = %message, "model server call failed, retrying in {wait:?}");
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(self.retry.max_delay);
            attempt += 1;
        }
    }

    async fn try_json<T: DeserializeOwned>(&self, body: &impl Serialize) -> Result<T, Failure> {
        let (response, _permit) = self.send(body).await?;
        let status = response.status();
        let text = response.text().await.map_err(|error| self.transport_failure(&error))?;
        serde_json::from_str(&text).map_err(|error| {
            Failure::Permanent(format!(
                "{} answered {status} with JSON of an unexpected shape ({error}): {}",
                self.endpoint,
                excerpt(&text)
            ))
        })
    }

    async fn try_open(&self, body: &impl Serialize) -> Result<Opened, Failure> {
        let (response, permit) = self.send(body).await?;
        Ok(Opened {
            endpoint: self.endpoint.clone(),
            timeout: self.timeout,
            response,
            _permit: permit,
        })
    }

    /// One try: the answer when its status is a success, with the slot it
    /// holds.
    async fn send(&self, body: &impl Serialize) -> Result<(reqwest::Response, OwnedSemaphorePermit), Failure> {
        // A permit per try, not per call: a call waiting out its backoff does
        // not hold a slot another call could use.
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let mut request = self.client.post(&self.endpoint).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|error| self.transport_failure(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok((response, permit));
        }
        let after = retry_after(&response);
        let text = response.text().await.map_err(|error| self.transport_failure(&error))?;
        let message = format!("{} answered {status}: {}", self.endpoint, excerpt(&text));
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
            Err(Failure::Retry { message, after })
        } else {
            Err(Failure::Permanent(message))
        }
    }

    fn transport_failure(&self, error: &reqwest::Error) -> Failure {
        Failure::Retry {
            message: transport_message(&self.endpoint, self.timeout, error),
            after: None,
        }
    }
}

/// A successful answer not read yet (see [`Remote::open`]).
pub struct Opened {
    endpoint: String,
    timeout: Duration,
    response: reqwest::Response,
    _permit: OwnedSemaphorePermit,
}

impl Opened {
    /// The next piece of the body as it arrives; `None` at its end. A
    /// failure now is transient: the server answered and then broke off or
    /// ran past the timeout.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, RemoteError> {
        self.response
            .chunk()
            .await
            .map_err(|error| RemoteError::Transient(transport_message(&self.endpoint, self.timeout, &error)))
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

fn transport_message(endpoint: &str, timeout: Duration, error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("{endpoint} did not answer within {timeout:?}")
    } else {
        format!("cannot reach {endpoint}: {}", chain(error))
    }
}

/// Puts the `(index, item)` pairs a server answered into input order,
/// refusing an answer that misses an input, repeats one or names one that does
/// not exist.
pub fn in_input_order<T>(endpoint: &str, count: usize, items: impl IntoIterator<Item = (usize, T)>) -> Result<Vec<T>, RemoteError> {
    let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None).take(count).collect();
    for (index, item) in items {
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(item),
            _ => {
                return Err(RemoteError::Permanent(format!(
                    "{endpoint} answered index {index} twice or out of range for {count} inputs"
                )));
            }
        }
    }
    let answered = slots.iter().filter(|slot| slot.is_some()).count();
    if answered < count {
        return Err(RemoteError::Permanent(format!(
            "{endpoint} answered for {answered} of {count} inputs"
        )));
    }
    Ok(slots.into_iter().flatten().collect())
}

/// A `Retry-After` given in seconds (the HTTP-date form is rare from model
/// servers and falls back to our own backoff).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The start of a response body, on one line.
fn excerpt(body: &str) -> String {
    let body = one_line(body);
    if body.is_empty() {
        return "(empty body)".into();
    }
    match body.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body,
    }
}

/// An error with its causes, which is where reqwest keeps the useful part
/// ("Connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_put_in_input_order_and_incomplete_ones_refused() {
        assert_eq!(in_input_order("u", 3, [(2, 'c'), (0, 'a'), (1, 'b')]), Ok(vec!['a', 'b', 'c']));
        for answer in [
            vec![(0, 'a'), (0, 'b'), (1, 'c')],
            vec![(0, 'a'), (3, 'b'), (1, 'c')],
            vec![(0, 'a'), (1, 'b')],
        ] {
            assert!(matches!(in_input_order("u", 3, answer), Err(RemoteError::Permanent(m)) if m.starts_with("u answered")));
        }
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt(""), "(empty body)");
        assert_eq!(excerpt("{\"error\":\n  \"overloaded\"}"), "{\"error\": \"overloaded\"}");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }
}

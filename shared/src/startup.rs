//! Bounded waiting for dependencies that are still starting (a container
//! coming up beside us, say). Past the bound, start-up fails with one line that
//! names the dependency and its last error.

use std::{fmt::Display, future::Future, time::Duration};

use tokio::time::{Instant, sleep};

/// A dependency that did not answer within the start-up timeout.
#[derive(Debug, thiserror::Error)]
#[error("{dependency} unreachable after {waited:?}: {last_error}")]
pub struct Unreachable {
    /// "postgres", "rabbitmq" or "redis".
    pub dependency: &'static str,
    /// How long start-up waited.
    pub waited: Duration,
    /// The last attempt's error, on one line.
    pub last_error: String,
}

/// Calls `attempt` until it succeeds or `timeout` has passed, backing off from
/// 100 ms to 2 s between tries.
pub async fn wait_for<T, E, F, Fut>(dependency: &'static str, timeout: Duration, mut attempt: F) -> Result<T, Unreachable>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let error = match tokio::time::timeout(Duration::from_secs(5), attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out after 5s".to_owned(),
        };
        if start.elapsed() + delay > timeout {
            return Err(Unreachable {
                dependency,
                waited: start.elapsed(),
                last_error: one_line(&error),
            });
        }
        tracing::warn!(dependency, error = %error, "dependency not ready, retrying in {delay:?}");
        sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Folds a possibly multi-line error message onto one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

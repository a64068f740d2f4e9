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

/// The body of both binaries' `main`: read the configuration (a bad setting is
/// one line and exit code 2), install logging, run `body` on a multi-threaded
/// runtime, and turn its error into one line and exit code 1.
pub fn run_binary<F, Fut>(name: &str, body: F) -> std::process::ExitCode
where
    F: FnOnce(crate::config::Config) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use std::process::ExitCode;
    let config = match crate::config::Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

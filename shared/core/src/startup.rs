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

/// Installs ring as rustls's process-wide crypto provider, once, before the
/// first HTTPS client (object_store's or a model server's) is built: reqwest is
/// built without one of its own (its default, aws-lc-rs, needs cmake and a long
/// C build), and ring is already in the tree. Calling it again, or after
/// another provider was installed, changes nothing.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Folds a possibly multi-line error message onto one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a binary reads from the environment before anything else: the
/// worker's [`Config`](crate::config::Config), or the api-server's, which adds
/// the settings of accounts and tokens.
pub trait Settings: Sized {
    /// Reads and checks every setting (see `Config::from_env`).
    fn from_env() -> Result<Self, crate::config::ConfigError>;
    /// The settings both binaries share (logging and export among them).
    fn core(&self) -> &crate::config::Config;
}

impl Settings for crate::config::Config {
    fn from_env() -> Result<Self, crate::config::ConfigError> {
        crate::config::Config::from_env()
    }

    fn core(&self) -> &crate::config::Config {
        self
    }
}

/// The body of both binaries' `main`: read the settings (a bad one is one line
/// and exit code 2), install logging, run `body` on a multi-threaded runtime,
/// and turn its error into one line and exit code 1.
pub fn run_binary<S, F, Fut>(name: &str, body: F) -> std::process::ExitCode
where
    S: Settings,
    F: FnOnce(S) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use std::process::ExitCode;
    let config = match S::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::from(2);
        }
    };
    let core = config.core();
    if core.otlp_endpoint.is_some() {
        install_tls_provider();
    }
    let telemetry = match crate::telemetry::init(name, core.log_format, core.otlp_endpoint.as_deref()) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ended = runtime.block_on(body(config));
    drop(runtime);
    telemetry.shutdown();
    match ended {
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

//! `folio-api`: serve (the default), `folio-api migrate`, or `folio-api health`
//! (exit 0 when the server at `FOLIO_GRPC_ADDR` is SERVING: a container probe).

use std::process::ExitCode;

use folio_shared::{config::Config, telemetry};

const USAGE: &str = "usage: folio-api [serve|migrate|health]  (settings come from the environment; see README)";

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if matches!(command.as_str(), "-V" | "--version") {
        println!("folio-api {}", folio_shared::VERSION);
        return ExitCode::SUCCESS;
    }
    if !matches!(command.as_str(), "serve" | "migrate" | "health") {
        eprintln!("folio-api: unknown command {command:?}; {USAGE}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("folio-api: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("folio-api: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        if command == "health" {
            return folio_api::probe_health(config.grpc_addr).await;
        }
        if command == "migrate" {
            let applied = folio_api::migrate(&config).await?;
            println!("folio-api: {} migration(s) applied", applied.len());
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|error| anyhow::anyhow!("setting FOLIO_GRPC_ADDR: cannot listen on {}: {error}", config.grpc_addr))?;
        folio_api::run(config, listener, shutdown_signal()).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("folio-api: {}", folio_shared::startup::one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

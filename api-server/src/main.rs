//! `folio-api`: serve (the default), `folio-api migrate`, or `folio-api health`
//! (exit 0 when the server at `FOLIO_GRPC_ADDR` is SERVING: a container probe).

use std::process::ExitCode;

use folio_core::startup;

const USAGE: &str = "usage: folio-api [serve|migrate|health]  (settings come from the environment; see README)";

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if matches!(command.as_str(), "-V" | "--version") {
        println!("folio-api {}", folio_core::VERSION);
        return ExitCode::SUCCESS;
    }
    if !matches!(command.as_str(), "serve" | "migrate" | "health") {
        eprintln!("folio-api: unknown command {command:?}; {USAGE}");
        return ExitCode::from(2);
    }
    startup::run_binary("folio-api", |config: folio_api::ApiConfig| async move {
        if command == "health" {
            return folio_api::probe_health(config.core.grpc_addr).await;
        }
        if command == "migrate" {
            let applied = folio_api::migrate(&config.core).await?;
            println!("folio-api: {} migration(s) applied", applied.len());
            return Ok(());
        }
        let addr = config.core.grpc_addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| anyhow::anyhow!("setting FOLIO_GRPC_ADDR: cannot listen on {addr}: {error}"))?;
        folio_api::run(config, listener, startup::shutdown_signal()).await
    })
}

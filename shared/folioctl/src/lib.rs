//! folioctl, folio's admin command line. It speaks only the public gRPC API
//! (`folio-proto`'s clients), as any other client would: nothing here reads
//! the database, the queue or the api-server's code, so what folioctl can do
//! is exactly what the API offers, with the same checks and audit.
//!
//! # Layout
//!
//! - `cli.rs`: the commands and flags (clap derive) and their help.
//! - `context.rs`: the server, the credentials store and the output of a run.
//! - `client.rs`: the connection, the bearer token, refresh-and-retry.
//! - `credentials.rs`: the saved sessions, mode 0600, keyed by server.
//! - `records.rs`: each proto message as named fields, once for both outputs.
//! - `output.rs`: tables and `--json`.
//! - `progress.rs`: the watch-driven progress bars.
//! - `exit.rs`: errors, their message and their exit code per gRPC status.
//! - `commands/`: one module per group of commands.

pub mod cli;
pub mod client;
mod commands;
pub mod context;
pub mod credentials;
pub mod exit;
pub mod output;
pub mod progress;
pub mod records;

use clap::CommandFactory as _;

use crate::{
    cli::{Cli, Command},
    commands::{account, documents, search, system, users},
    context::Context,
    credentials::Store,
    exit::Error,
    output::Output,
};

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let out = Output { json: cli.json };
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "folioctl", &mut std::io::stdout());
        return Ok(());
    }
    let config_dir = cli
        .config_dir
        .or_else(credentials::default_config_dir)
        .ok_or_else(|| Error::local("no config directory: set --config-dir, FOLIOCTL_CONFIG_DIR or HOME"))?;
    let ctx = Context {
        server: client::normalize_server(&cli.server),
        store: Store::new(&config_dir),
        out,
    };
    match cli.command {
        Command::Login(args) => account::login(&ctx, args).await,
        Command::Logout => account::logout(&ctx).await,
        Command::Whoami => account::whoami(&ctx).await,
        Command::Users(command) => users::users(&ctx, command).await,
        Command::Audit(args) => users::audit(&ctx, args).await,
        Command::Documents(command) => documents::documents(&ctx, command).await,
        Command::Search(args) => search::search(&ctx, args).await,
        Command::DeadLetters(command) => system::dead_letters(&ctx, command).await,
        Command::Stats(args) => system::stats(&ctx, args).await,
        Command::Settings(command) => system::settings(&ctx, command).await,
        Command::Services(command) => system::services(&ctx, command).await,
        Command::Workers(args) => system::workers(&ctx, args).await,
        Command::Completions { .. } => Ok(()),
    }
}

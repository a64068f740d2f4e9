//! `folio-worker`: consume and run jobs until SIGTERM or SIGINT.

use std::process::ExitCode;

use folio_core::startup;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("-V" | "--version") => {
            println!("folio-worker {}", folio_core::VERSION);
            return ExitCode::SUCCESS;
        }
        Some(_) => {
            println!("usage: folio-worker  (settings come from the environment; see README)");
            return ExitCode::from(2);
        }
    }
    startup::run_binary("folio-worker", |config| folio_worker::run(config, startup::shutdown_signal()))
}

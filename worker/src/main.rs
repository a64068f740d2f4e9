//! `folio-worker`: consume and run jobs until SIGTERM or SIGINT; or, as
//! `folio-worker parse`, parse one document in the sandbox's child process.

use std::process::ExitCode;

use folio_core::startup;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        // The child that parses one document (see `sandbox`): no runtime, no
        // settings, only standard input and output.
        Some("parse") => return folio_worker::sandbox::child_main(),
        Some("-V" | "--version") => {
            println!("folio-worker {}", folio_core::VERSION);
            return ExitCode::SUCCESS;
        }
        Some(_) => {
            println!("usage: folio-worker [parse]  (settings come from the environment; see README)");
            return ExitCode::from(2);
        }
    }
    startup::run_binary("folio-worker", |config| folio_worker::run(config, startup::shutdown_signal()))
}

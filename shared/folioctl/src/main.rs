//! The `folioctl` binary: parse, run, exit with the code `exit.rs` assigns.

use std::process::ExitCode;

use clap::Parser as _;
use folioctl::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(folioctl::exit::LOCAL);
        }
    };
    match runtime.block_on(folioctl::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if json {
                eprintln!("{}", error.to_json());
            } else {
                eprintln!("{}", error.render());
            }
            ExitCode::from(error.exit_code())
        }
    }
}

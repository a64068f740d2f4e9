//! The tracing subscriber both binaries install: `RUST_LOG` filters (default
//! `info`), and lines are human-readable or JSON by `FOLIO_LOG_FORMAT`. Colours
//! only on a terminal, so piped and collected logs stay plain text.

use std::io::IsTerminal as _;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, early in `main`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            // Every span around the line, outermost first: the `rpc` or
            // `job` span names the trace id.
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true),
            )
            .init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_target(true).with_ansi(std::io::stdout().is_terminal()))
            .init(),
    }
}

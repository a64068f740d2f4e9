//! Settings of the WatchDocument and WatchDocuments streams.

use std::time::Duration;

use super::{ConfigError, vars::Vars};

/// Settings of the WatchDocument and WatchDocuments streams.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// `FOLIO_WATCH_POLL_MS`: how often the api-server reads new events from
    /// Postgres while Redis is unreachable (with Redis, notices wake it at once).
    pub poll: Duration,
    /// `FOLIO_WATCH_BACKSTOP_SECS`: how often it reads them while Redis is up,
    /// for a notice lost between a commit and its publish.
    pub backstop: Duration,
    /// `FOLIO_WATCH_HEARTBEAT_SECS`: a stream that sent nothing for this long
    /// sends a heartbeat message.
    pub heartbeat: Duration,
    /// `FOLIO_WATCH_BUFFER`: live events held for one stream; a stream that
    /// falls further behind reads from Postgres until it has caught up.
    pub buffer: usize,
    /// `FOLIO_WATCH_MAX_PER_USER`: streams one account may hold open on one
    /// api-server.
    pub max_per_user: usize,
    /// `FOLIO_WATCH_RECHECK_SECS`: how often a stream checks that its session is
    /// still live (revocations also reach streams at once through Redis).
    pub recheck: Duration,
}

impl WatchConfig {
    pub(super) fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(WatchConfig {
            poll: vars.millis("FOLIO_WATCH_POLL_MS", 500, 10, 60_000)?,
            backstop: vars.secs("FOLIO_WATCH_BACKSTOP_SECS", 5, 1, 3600)?,
            heartbeat: vars.secs("FOLIO_WATCH_HEARTBEAT_SECS", 15, 1, 3600)?,
            buffer: vars.bounded("FOLIO_WATCH_BUFFER", 256, 1, 1 << 20)?,
            max_per_user: vars.bounded("FOLIO_WATCH_MAX_PER_USER", 100, 1, 1 << 20)?,
            recheck: vars.secs("FOLIO_WATCH_RECHECK_SECS", 30, 1, 3600)?,
        })
    }
}

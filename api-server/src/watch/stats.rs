//! The hub's counters, as GetInfo reports them. A file of its own, importing
//! nothing, so that `health::Info` (and through it `convert.rs`) can name them
//! without depending on the hub, which depends on `convert.rs`.

/// The hub's counters.
#[derive(Debug, Clone, Copy)]
pub struct HubStats {
    /// The watch streams open on this server.
    pub streams: usize,
    /// Whether Redis notices arrive (false: the hub polls Postgres every
    /// `FOLIO_WATCH_POLL_MS` instead).
    pub live_notices: bool,
    /// How many times, since start, a stream fell more than
    /// `FOLIO_WATCH_BUFFER` events behind and caught up from Postgres.
    pub fallbacks: u64,
}

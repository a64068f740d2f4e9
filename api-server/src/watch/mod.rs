//! Live status: the WatchDocument and WatchDocuments streams.
//!
//! - [`hub`] is the one place per process that listens to Redis and reads new
//!   events from Postgres, and fans each event out to the streams that want it.
//! - [`stream`] is one stream: it subscribes to the hub, replays what Postgres
//!   holds after the client's cursor, then forwards live events, dropping any
//!   id it has already passed; it sends heartbeats and ends on a terminal
//!   event, shutdown, token expiry, revocation, or (one document read
//!   through a share) once that document is no longer shared.
//!
//! Why nothing is lost or sent twice: the hub hands out events in id order
//! and only up to a settled horizon, below which no lower id can still commit
//! (see `document_event::settled`); a stream subscribes before it replays, and
//! replays from Postgres only up to the hub's cursor, which moves under the
//! same lock as the hand-out; the stream's cursor only moves forward. Every
//! event after the stream's cursor is either at or below the hub's cursor
//! when the replay reads (so the replay has it) or above it (so the hub hands
//! it over).

pub mod hub;
pub mod stats;
pub mod stream;

pub use hub::Hub;

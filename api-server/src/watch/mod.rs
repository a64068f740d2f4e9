//! Live status: the WatchDocument and WatchDocuments streams.
//!
//! - [`hub`] is the one place per process that listens to Redis and reads new
//!   events from Postgres, and fans each event out to the streams that want it.
//! - [`stream`] is one stream: it subscribes to the hub, replays what Postgres
//!   holds after the client's cursor, then forwards live events, dropping any
//!   id it has already passed; it sends heartbeats and ends on a terminal
//!   event, shutdown, token expiry or revocation.
//!
//! Why nothing is lost or sent twice: event ids become visible in id order
//! (appends are serialised, see `document_event::append`), the subscription is
//! made before the replay query, and the stream's cursor only moves forward.
//! Every event after the cursor is either already committed when the replay
//! reads (so the replay has it) or committed later (so the hub hands it over).

pub mod hub;
pub mod stream;

pub use hub::Hub;

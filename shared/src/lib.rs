//! folio's domain, shared by the api-server and the workers.
//!
//! # Layout
//!
//! - [`config`] holds settings from the environment (and a `.env` file), validated
//!   once at start so a bad value stops the process with one line naming it.
//! - [`db`] holds the connection pool, embedded migrations, the diesel schema and one
//!   model file per table.
//! - [`queue`] holds the RabbitMQ contract: topology names and declaration, job
//!   encoding and publishing with confirms.
//! - [`auth`] holds roles, email and password rules, argon2id hashing, PASETO
//!   access tokens and opaque refresh tokens.
//! - [`documents`] holds the event-with-state-change helper and Redis notices.
//! - [`blobs`] holds the blob store.
//! - [`pipeline`] holds the document stages without transport: format
//!   detection, parsers, the chunker and the embedders.
//! - [`cache`] holds the Redis connection with folio's key prefix.
//! - [`startup`] holds bounded retries for dependencies that are still coming up.
//! - [`telemetry`] holds the tracing subscriber both binaries install.
//!
//! Nothing here knows tonic: gRPC types stay in the api-server.

pub mod auth;
pub mod blobs;
pub mod cache;
pub mod config;
pub mod db;
pub mod documents;
pub mod pipeline;
pub mod queue;
pub mod startup;
pub mod telemetry;

/// The version every folio binary reports (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

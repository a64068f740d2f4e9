//! folio's core, which both binaries share.
//!
//! # Layout
//!
//! - [`config`] holds settings from the environment (and a `.env` file), validated
//!   once at start so a bad value stops the process with one line naming it.
//!   The settings of accounts and tokens are read by `folio-auth`, which only the
//!   api-server uses.
//! - [`queue`] holds the RabbitMQ contract: topology names and declaration, job
//!   encoding and publishing with confirms.
//! - [`blobs`] holds the blob store.
//! - [`cache`] holds the Redis connection with folio's key prefix.
//! - [`page_token`] holds the opaque page tokens of every list RPC.
//! - [`startup`] holds bounded retries for dependencies that are still coming up
//!   and the body of both binaries' `main`.
//! - [`telemetry`] holds the tracing subscriber both binaries install.
//! - [`trace`] holds the W3C trace context every call and the jobs it causes
//!   carry, and the task-local current one.
//! - [`metrics`] holds every Prometheus metric's name and the `/metrics`
//!   endpoint both binaries serve.
//!
//! The other crates under `shared/` build on this one: `folio-db` (the
//! database, its models and the document lifecycle), `folio-parse` (format
//! detection, parsers, chunker), `folio-models` (embedders and rerankers) and
//! `folio-auth`. Nothing here knows tonic: gRPC types stay in the api-server.

pub mod blobs;
pub mod cache;
pub mod config;
pub mod fair;
pub mod metrics;
pub mod page_token;
pub mod queue;
pub mod startup;
pub mod telemetry;
pub mod trace;

/// The version every folio binary reports (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! The harness behind folio's end-to-end suite.
//!
//! Every test gets its own [`TestEnv`]: a Postgres database cloned from a
//! migrated template, its own RabbitMQ name prefix and Redis key prefix, so tests
//! run in parallel (and beside earlier runs' leftovers) on the machine's real
//! servers. Servers bind port 0. The env cleans up after itself when dropped.
//!
//! Servers run in-process ([`TestEnv::spawn_api`], [`TestEnv::spawn_worker`]) or
//! as the real binaries ([`TestEnv::command`]) where exit codes and signals are
//! what is under test. [`TcpProxy`] stands between a server and a dependency so a
//! test can cut the link and restore it.
//!
//! # Layout
//!
//! - [`environment`] has [`TestEnv`], the template database, the prefixes and
//!   the cleanup; the servers' URLs, the bootstrap admin and [`binary_path`]
//!   (the built binaries; in-process workers parse in `folio-worker`).
//! - [`clients`] has [`ApiHandle`] and the typed clients it hands out, the
//!   [`Authed`] channels with a [`Bearer`] token, login and registration.
//! - [`processes`] starts servers in-process or as binaries, waits for them
//!   to serve and stops them ([`spawn_api_process`], [`WorkerHandle`],
//!   [`ApiProcess`]).
//! - [`helpers`] waits ([`eventually`], [`wait_for`], [`wait_for_state`]), makes documents
//!   and reads what happened (events, queues, health, field violations).
//! - [`proxy`] has [`TcpProxy`].
//! - [`models`] finds the real models the model tests run; [`relevance`] the
//!   real documents and the search relevance measure; [`s3`] runs an
//!   S3-compatible server for the `s3://` blob store; [`scans`] makes scans
//!   and photos of real PDF pages and scores OCR's word accuracy.
//! - [`bench`](mod@bench) has what the benchmark binaries (`src/bin/bench-*.rs`) share.
//!
//! Everything a test uses is re-exported here, so tests name it
//! `folio_tests::X` whichever module it lives in.

pub mod authenticator;
pub mod bench;
pub mod clients;
pub mod environment;
pub mod fake_model;
pub mod helpers;
pub mod models;
pub mod nodes;
pub mod oidc;
pub mod processes;
pub mod proxy;
pub mod relevance;
pub mod s3;
pub mod scans;
pub mod smtp;

pub use authenticator::totp;
pub use clients::{ApiHandle, Authed, Bearer};
pub use environment::{ADMIN_EMAIL, ADMIN_PASSWORD, TestEnv, amqp_url, binary_path, redis_url};
pub use helpers::{
    create_document, document_events, eventually, health_status, outbox_drained, prose, publisher, ready_messages, reason, upload_document,
    upload_ready, violated_fields, wait_for, wait_for_state,
};
pub use processes::{ApiProcess, WorkerHandle, spawn_api_process};
pub use proxy::TcpProxy;

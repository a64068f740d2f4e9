//! One module per table: its row types and the queries on it.

pub mod outbox;
pub mod ping;
pub mod processed_job;
pub mod worker;

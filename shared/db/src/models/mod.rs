//! One module per table: its row types and the queries on it.

pub mod audit_event;
pub mod chunk;
pub mod dead_letter;
pub mod document;
pub mod document_event;
pub mod email;
pub mod embedding_index;
pub mod fair_share;
pub mod group;
pub mod oidc;
pub mod outbox;
pub mod ping;
pub mod processed_job;
pub mod provider;
pub mod refresh_token;
pub mod retention_rule;
pub mod second_factor;
pub mod segment;
pub mod service;
pub mod session;
pub mod setting;
pub mod share;
pub mod user;
pub mod worker;

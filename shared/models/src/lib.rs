//! The model providers of the pipeline and of search: [`embed`] (the
//! `Embedder` trait, one file per provider and `from_config`, the registration
//! list) and [`rerank`] (the `Reranker` trait, likewise). [`remote`] is the
//! HTTP client the model-server providers of both share, and [`chat`] (a
//! chat-completions endpoint, whole or streamed, for answers) uses too; [`live`] the models a
//! process uses now, following an admin's run-time choice of providers. The
//! worker embeds chunks; the api-server embeds queries and reranks results.

pub mod chat;
pub mod embed;
pub mod live;
pub mod remote;
pub mod rerank;

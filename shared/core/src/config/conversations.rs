//! Settings of ConversationService: how long conversations live and how many
//! a user keeps, how Ask retrieves, and the chat endpoint that answers (none:
//! extractive answers).

use std::time::Duration;

use super::{ApiKey, ConfigError, vars::Vars};

/// Settings of ConversationService.
#[derive(Clone, Debug)]
pub struct ConversationsConfig {
    /// `FOLIO_CONVERSATION_REDIS_URL`: the Redis conversations are kept in
    /// (unset: `REDIS_URL`'s), under `FOLIO_REDIS_PREFIX` either way.
    pub redis_url: Option<String>,
    /// `FOLIO_CONVERSATION_TTL_SECS`: a conversation expires this long after
    /// its last write.
    pub ttl: Duration,
    /// `FOLIO_CONVERSATIONS_PER_USER`: conversations one user keeps at once.
    pub per_user: usize,
    /// `FOLIO_CONVERSATION_MAX_MESSAGES`: messages in one conversation (a
    /// question and its answer are two).
    pub max_messages: usize,
    /// `FOLIO_ASK_PASSAGES`: passages an Ask retrieves unless it says.
    pub passages: usize,
    /// `FOLIO_ASK_MIN_SIMILARITY`: the cosine similarity to the question at
    /// which a passage that is no keyword match counts as relevant.
    pub min_similarity: f64,
    /// The chat endpoint, if `FOLIO_CHAT_URL` is set.
    pub chat: Option<ChatConfig>,
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// `FOLIO_CHAT_URL`: the server's base URL; folio posts to
    /// `<url>/v1/chat/completions`.
    pub url: String,
    /// `FOLIO_CHAT_MODEL`: the model asked for.
    pub model: String,
    /// `FOLIO_CHAT_API_KEY`: sent as a bearer token, if set.
    pub api_key: Option<ApiKey>,
    /// `FOLIO_CHAT_TIMEOUT_MS`: the time one request may take, its streamed
    /// answer included.
    pub timeout: Duration,
    /// `FOLIO_CHAT_CONCURRENCY`: requests one api-server has in flight at once.
    pub concurrency: usize,
    /// `FOLIO_CHAT_MAX_TOKENS`: the longest answer asked for, in tokens.
    pub max_tokens: u32,
}

impl ConversationsConfig {
    pub(super) fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let chat = match vars.get("FOLIO_CHAT_URL") {
            None => None,
            Some(_) => Some(ChatConfig {
                url: vars.url("FOLIO_CHAT_URL", &["http", "https"])?.trim_end_matches('/').to_owned(),
                model: vars.needed("FOLIO_CHAT_MODEL", Some("FOLIO_CHAT_URL"))?.unwrap_or_default(),
                api_key: vars.get("FOLIO_CHAT_API_KEY").map(ApiKey::new),
                timeout: vars.millis("FOLIO_CHAT_TIMEOUT_MS", 60_000, 10, 600_000)?,
                concurrency: vars.bounded("FOLIO_CHAT_CONCURRENCY", 8, 1, 256)?,
                max_tokens: vars.bounded("FOLIO_CHAT_MAX_TOKENS", 512, 1, 32_768)?,
            }),
        };
        Ok(ConversationsConfig {
            redis_url: match vars.get("FOLIO_CONVERSATION_REDIS_URL") {
                Some(_) => Some(vars.url("FOLIO_CONVERSATION_REDIS_URL", &["redis", "rediss"])?),
                None => None,
            },
            ttl: vars.secs("FOLIO_CONVERSATION_TTL_SECS", 1800, 1, 30 * 86_400)?,
            per_user: vars.bounded("FOLIO_CONVERSATIONS_PER_USER", 50, 1, 10_000)?,
            max_messages: vars.bounded("FOLIO_CONVERSATION_MAX_MESSAGES", 100, 2, 10_000)?,
            passages: vars.bounded("FOLIO_ASK_PASSAGES", 5, 1, 20)?,
            min_similarity: vars.bounded("FOLIO_ASK_MIN_SIMILARITY", 0.3, -1.0, 1.0)?,
            chat,
        })
    }
}

//! Conversations and Ask in domain terms, knowing no protobuf
//! (`conversation_service.rs` reads the requests, `convert.rs` writes the
//! answers): a conversation kept in Redis (`store.rs`), a question answered
//! in it from a search (`ask.rs`), the answer's text made extractive or read
//! for its citations (`answer.rs`).

pub mod answer;
pub mod ask;
pub mod store;

use chrono::{DateTime, Utc};
use folio_core::{cache::Cache, config::ConversationsConfig};
use folio_models::chat::Chat;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{auth::Principal, error::ApiResult, page_token::Page, search::Search};

/// ConversationService's work, with what it needs.
#[derive(Clone)]
pub struct Conversations {
    /// Where conversations are kept (`FOLIO_CONVERSATION_REDIS_URL`, else
    /// the deployment's Redis), under the deployment's prefix.
    pub cache: Cache,
    pub config: ConversationsConfig,
    /// What Ask retrieves with, as SearchService does.
    pub search: Search,
    /// The chat endpoint that answers; none: extractive answers.
    pub chat: Option<Chat>,
}

/// A conversation as kept: its owner, scope and messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: Uuid,
    pub owner: Uuid,
    pub title: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub messages: Vec<Message>,
}

/// What every question in a conversation is limited to, on top of what its
/// owner may search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub document_ids: Vec<Uuid>,
    pub labels: Vec<String>,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One message: a question (with the query it was searched as) or an
/// answer (with its citations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
    pub created_at: DateTime<Utc>,
}

/// A passage an answer cites as `[number]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub number: u32,
    pub chunk_id: i64,
    pub document_id: Uuid,
    pub document_title: String,
    pub filename: String,
    pub section_path: Vec<String>,
    pub page_start: i32,
    pub page_end: i32,
}

/// A new conversation's details, already valid.
#[derive(Debug, Clone, Default)]
pub struct NewConversation {
    pub title: String,
    pub scope: Scope,
}

impl Conversations {
    /// Starts an empty conversation for `principal`, its scope checked as a
    /// search checks its filters.
    pub async fn create(&self, principal: &Principal, new: NewConversation) -> ApiResult<Conversation> {
        self.search
            .check_scope(principal, &new.scope.document_ids, &new.scope.labels)
            .await
            .map_err(crate::search::Error::into_api)?;
        let now = Utc::now();
        let conversation = Conversation {
            id: Uuid::now_v7(),
            owner: principal.user_id,
            title: new.title,
            scope: new.scope,
            created_at: now,
            updated_at: now,
            messages: Vec::new(),
        };
        store::create(&self.cache, &self.config, &conversation).await?;
        Ok(conversation)
    }

    /// The caller's conversation `id`; anyone else's is not found.
    pub async fn get(&self, principal: &Principal, id: Uuid) -> ApiResult<Conversation> {
        Ok(store::get(&self.cache, principal.user_id, id).await?.0)
    }

    /// A page of the caller's conversations, the most recently written
    /// first, without their messages (but their count).
    pub async fn list(
        &self,
        principal: &Principal,
        page_size: i64,
        after: Option<store::Cursor>,
    ) -> ApiResult<Page<(Conversation, usize)>> {
        store::list(&self.cache, principal.user_id, page_size, after).await
    }

    /// Removes the caller's conversation `id`.
    pub async fn delete(&self, principal: &Principal, id: Uuid) -> ApiResult<()> {
        store::delete(&self.cache, principal.user_id, id).await
    }

    /// When a conversation written at `updated_at` expires.
    pub fn expires_at(&self, updated_at: DateTime<Utc>) -> DateTime<Utc> {
        updated_at + self.config.ttl
    }
}

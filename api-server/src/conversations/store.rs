//! Conversations in Redis. Each is one key, `conversation:<id>` (prefixed),
//! holding its JSON and expiring `FOLIO_CONVERSATION_TTL_SECS` after its last
//! write. Each owner has an index, `conversations:<owner>`, a sorted set of
//! their conversations' ids scored by when each expires (milliseconds), which
//! is also the order of their last writes; it expires with the newest of them.
//!
//! Every write is one Lua script, so Redis applies it whole or not at all: a
//! new conversation is counted against the owner's bound and written with its
//! index entry together; an answered question is written only if the
//! conversation is still exactly what the answer was made from (else it is
//! read again and the turn added to what is there now). A Redis that does not
//! answer is UNAVAILABLE, and nothing is half-written.

use chrono::{DateTime, Utc};
use folio_core::{cache::Cache, config::ConversationsConfig};
use uuid::Uuid;

use super::{Conversation, Message};
use crate::{
    error::{ApiError, ApiResult},
    page_token::{Page, decode_time_id, encode_time_id},
};

/// The page token's tag.
const TOKEN_TAG: &str = "cv1";

/// Tries an answered question gets to be written over concurrent writes to
/// its conversation.
const WRITE_TRIES: usize = 5;

/// The longest title taken from a first question, in characters.
const TITLE_CHARS: usize = 80;

/// Counts the owner's live conversations and, under the bound, writes the new
/// one and its index entry.
/// KEYS: index, conversation. ARGV: now (ms), expires (ms), ttl (s), bound, id, JSON.
const CREATE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('SET', KEYS[2], ARGV[6], 'EX', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Replaces a conversation only if it is still `old`, and moves its index entry.
/// KEYS: index, conversation. ARGV: old JSON, new JSON, ttl (s), expires (ms), id.
const REPLACE: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[5])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
";

/// Where a page of ListConversations ended: the last conversation's expiry
/// (its index score) and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub expires_ms: i64,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let at = DateTime::from_timestamp_millis(self.expires_ms).unwrap_or_default();
        encode_time_id(TOKEN_TAG, (at, self.id))
    }

    /// `None` for a token this list did not make.
    pub fn decode(token: &str) -> Option<Cursor> {
        let (at, id) = decode_time_id(TOKEN_TAG, token)?;
        Some(Cursor {
            expires_ms: at.timestamp_millis(),
            id,
        })
    }
}

fn conversation_key(cache: &Cache, id: Uuid) -> String {
    cache.key(&format!("conversation:{id}"))
}

fn index_key(cache: &Cache, owner: Uuid) -> String {
    cache.key(&format!("conversations:{owner}"))
}

/// Redis failed: the caller may retry.
fn unavailable(error: redis::RedisError) -> ApiError {
    tracing::warn!(%error, "conversation store unavailable");
    ApiError::Unavailable("conversations are unavailable (Redis did not answer); try again".into())
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no conversation {id}"))
}

fn expires_ms(config: &ConversationsConfig, at: DateTime<Utc>) -> i64 {
    (at + config.ttl).timestamp_millis()
}

fn ttl_secs(config: &ConversationsConfig) -> u64 {
    config.ttl.as_secs().max(1)
}

fn encode(conversation: &Conversation) -> ApiResult<String> {
    serde_json::to_string(conversation).map_err(|error| ApiError::Internal(error.into()))
}

/// Writes a new conversation, unless its owner has as many as they may keep.
pub async fn create(cache: &Cache, config: &ConversationsConfig, conversation: &Conversation) -> ApiResult<()> {
    let mut connection = cache.connection();
    let written: i64 = redis::cmd("EVAL")
        .arg(CREATE)
        .arg(2)
        .arg(index_key(cache, conversation.owner))
        .arg(conversation_key(cache, conversation.id))
        .arg(Utc::now().timestamp_millis())
        .arg(expires_ms(config, conversation.updated_at))
        .arg(ttl_secs(config))
        .arg(config.per_user)
        .arg(conversation.id.to_string())
        .arg(encode(conversation)?)
        .query_async(&mut connection)
        .await
        .map_err(unavailable)?;
    if written == 0 {
        return Err(ApiError::QuotaExceeded {
            message: format!(
                "you keep {} conversations, the most there may be; delete one or let one expire",
                config.per_user
            ),
            violations: vec![tonic_types::QuotaViolation::new(
                "conversations",
                format!("at most {} conversations per user (FOLIO_CONVERSATIONS_PER_USER)", config.per_user),
            )],
        }
        .because("CONVERSATION_LIMIT"));
    }
    Ok(())
}

/// The owner's conversation `id` and its JSON as stored; anyone else's is
/// not found.
pub async fn get(cache: &Cache, owner: Uuid, id: Uuid) -> ApiResult<(Conversation, String)> {
    let mut connection = cache.connection();
    let stored: Option<String> = redis::cmd("GET")
        .arg(conversation_key(cache, id))
        .query_async(&mut connection)
        .await
        .map_err(unavailable)?;
    let stored = stored.ok_or_else(|| not_found(id))?;
    let conversation = decode(&stored, id)?;
    if conversation.owner != owner {
        return Err(not_found(id));
    }
    Ok((conversation, stored))
}

fn decode(stored: &str, id: Uuid) -> ApiResult<Conversation> {
    serde_json::from_str(stored).map_err(|error| ApiError::Internal(anyhow::anyhow!("conversation {id} is unreadable: {error}")))
}

/// Adds a question and its answer to the owner's conversation `id`, naming
/// it after the question if it has no title yet, as one write over whatever
/// the conversation holds by then. Not found if it was deleted or expired
/// meanwhile; FAILED_PRECONDITION if it is full.
pub async fn add_turn(
    cache: &Cache,
    config: &ConversationsConfig,
    owner: Uuid,
    id: Uuid,
    question: Message,
    answer: Message,
) -> ApiResult<Conversation> {
    let mut connection = cache.connection();
    for _ in 0..WRITE_TRIES {
        let (mut conversation, stored) = get(cache, owner, id).await?;
        check_room(config, &conversation)?;
        if conversation.title.is_empty() {
            conversation.title = title_from(&question.text);
        }
        conversation.updated_at = answer.created_at.max(conversation.updated_at);
        conversation.messages.push(question.clone());
        conversation.messages.push(answer.clone());
        let written: i64 = redis::cmd("EVAL")
            .arg(REPLACE)
            .arg(2)
            .arg(index_key(cache, owner))
            .arg(conversation_key(cache, id))
            .arg(&stored)
            .arg(encode(&conversation)?)
            .arg(ttl_secs(config))
            .arg(expires_ms(config, conversation.updated_at))
            .arg(id.to_string())
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        if written == 1 {
            return Ok(conversation);
        }
    }
    Err(ApiError::Unavailable(format!(
        "conversation {id} changed {WRITE_TRIES} times while this answer was being kept; ask again"
    )))
}

/// Whether the conversation has room for one more question and answer.
pub fn check_room(config: &ConversationsConfig, conversation: &Conversation) -> ApiResult<()> {
    if conversation.messages.len() + 2 > config.max_messages {
        return Err(ApiError::FailedPrecondition(format!(
            "the conversation holds {} messages, the most there may be (FOLIO_CONVERSATION_MAX_MESSAGES); start another",
            conversation.messages.len()
        ))
        .because("CONVERSATION_FULL"));
    }
    Ok(())
}

/// A title from a question: its first line, cut at a word near
/// [`TITLE_CHARS`].
fn title_from(question: &str) -> String {
    let line = question.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= TITLE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(TITLE_CHARS).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end())
}

/// A page of the owner's conversations, the most recently written first,
/// each with its number of messages (the messages themselves left out).
/// Index entries whose conversation expired are removed on the way.
pub async fn list(cache: &Cache, owner: Uuid, page_size: i64, after: Option<Cursor>) -> ApiResult<Page<(Conversation, usize)>> {
    let mut connection = cache.connection();
    let index = index_key(cache, owner);
    let (entries,): (Vec<(String, f64)>,) = redis::pipe()
        .atomic()
        .cmd("ZREMRANGEBYSCORE")
        .arg(&index)
        .arg("-inf")
        .arg(Utc::now().timestamp_millis())
        .ignore()
        .cmd("ZRANGE")
        .arg(&index)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut connection)
        .await
        .map_err(unavailable)?;
    let mut entries: Vec<Cursor> = entries
        .into_iter()
        .filter_map(|(id, score)| {
            Some(Cursor {
                expires_ms: score as i64,
                id: id.parse().ok()?,
            })
        })
        .collect();
    entries.sort_by_key(|entry| std::cmp::Reverse((entry.expires_ms, entry.id)));
    if let Some(after) = after {
        entries.retain(|entry| (entry.expires_ms, entry.id) < (after.expires_ms, after.id));
    }

    let wanted = page_size as usize + 1;
    let mut rows: Vec<(Cursor, Conversation, usize)> = Vec::with_capacity(wanted);
    let mut gone = Vec::new();
    let mut remaining = entries.as_slice();
    while rows.len() < wanted && !remaining.is_empty() {
        let take = (wanted - rows.len()).min(remaining.len());
        let (batch, rest) = remaining.split_at(take);
        remaining = rest;
        let keys: Vec<String> = batch.iter().map(|entry| conversation_key(cache, entry.id)).collect();
        let stored: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        for (entry, stored) in batch.iter().zip(stored) {
            match stored {
                Some(stored) => {
                    let mut conversation = decode(&stored, entry.id)?;
                    if conversation.owner == owner {
                        let count = conversation.messages.len();
                        conversation.messages.clear();
                        rows.push((*entry, conversation, count));
                    }
                }
                None => gone.push(entry.id.to_string()),
            }
        }
    }
    if !gone.is_empty() {
        let _: Result<(), _> = redis::cmd("ZREM").arg(&index).arg(&gone).query_async(&mut connection).await;
    }
    let page = Page::cut(rows, page_size, |(cursor, _, _)| cursor.encode());
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|(_, conversation, count)| (conversation, count))
            .collect(),
        next_page_token: page.next_page_token,
    })
}

/// Removes the owner's conversation `id`.
pub async fn delete(cache: &Cache, owner: Uuid, id: Uuid) -> ApiResult<()> {
    get(cache, owner, id).await?;
    let mut connection = cache.connection();
    redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg(conversation_key(cache, id))
        .ignore()
        .cmd("ZREM")
        .arg(index_key(cache, owner))
        .arg(id.to_string())
        .ignore()
        .query_async::<()>(&mut connection)
        .await
        .map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_the_first_line_cut_at_a_word() {
        assert_eq!(title_from("How do pipes work?\nAnd more"), "How do pipes work?");
        let long = "word ".repeat(40);
        let title = title_from(&long);
        assert!(title.ends_with("word…") && title.chars().count() <= TITLE_CHARS + 1, "{title}");
    }

    #[test]
    fn cursors_round_trip_and_refuse_other_lists() {
        let cursor = Cursor {
            expires_ms: 1_800_000_123_456,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode(&encode_time_id("d1", (Utc::now(), cursor.id))), None);
    }
}

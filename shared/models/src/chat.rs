//! An OpenAI-compatible chat-completions endpoint (`POST <url>/v1/chat/completions`),
//! whole or streamed as server-sent events, through the [`Remote`] client the
//! other model servers use (its timeout, retries and concurrency limit).
//!
//! A streamed answer arrives as `data: {json}` events, each a chunk whose
//! `choices[0].delta.content` is the next piece of text, then (when asked
//! with `stream_options.include_usage`) a chunk with `usage`, then
//! `data: [DONE]`. [`Sse`] splits the bytes into events; [`Answer::next`]
//! reads them as [`Piece`]s. Dropping an [`Answer`] closes its connection,
//! which is how the server learns to stop generating.

use std::{collections::VecDeque, time::Duration};

use folio_core::config::ChatConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::remote::{Opened, Remote, RemoteError, Retry};

/// Who says a message in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// Tokens the server counted for one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u32,
    #[serde(default)]
    pub completion_tokens: u32,
}

/// What a streamed answer brings next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The next piece of the answer's text.
    Text(String),
    /// The tokens counted, at the end.
    Usage(Usage),
}

/// A chat-completions endpoint and the model asked for.
#[derive(Clone)]
pub struct Chat {
    remote: Remote,
    model: String,
    max_tokens: u32,
}

impl Chat {
    pub fn from_config(config: &ChatConfig) -> Result<Self, String> {
        let endpoint = format!("{}/v1/chat/completions", config.url);
        let retry = Retry {
            attempts: 3,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        };
        let remote = Remote::new(endpoint, config.api_key.clone(), config.timeout, config.concurrency, retry)?;
        Ok(Chat {
            remote,
            model: config.model.clone(),
            max_tokens: config.max_tokens,
        })
    }

    /// The model asked for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The whole answer to `messages` at once, at most `max_tokens` long.
    pub async fn complete(&self, messages: &[Message], max_tokens: u32) -> Result<(String, Usage), RemoteError> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens.min(self.max_tokens),
            "temperature": 0,
            "stream": false,
        });
        let answer: Value = self.remote.post_json(&body).await?;
        let text = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| RemoteError::Permanent(format!("{} answered no choices[0].message.content", self.remote.endpoint())))?;
        let usage = serde_json::from_value(answer["usage"].clone()).unwrap_or_default();
        Ok((text.to_owned(), usage))
    }

    /// The answer to `messages`, streamed.
    pub async fn stream(&self, messages: &[Message]) -> Result<Answer, RemoteError> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        Ok(Answer {
            opened: self.remote.open(&body).await?,
            events: Sse::default(),
            pieces: VecDeque::new(),
            done: false,
        })
    }
}

/// A streamed answer being read.
pub struct Answer {
    opened: Opened,
    events: Sse,
    pieces: VecDeque<Piece>,
    done: bool,
}

impl Answer {
    /// The next piece; `None` once the server said `[DONE]` (or closed the
    /// stream after a finished chunk).
    pub async fn next(&mut self) -> Result<Option<Piece>, RemoteError> {
        loop {
            if let Some(piece) = self.pieces.pop_front() {
                return Ok(Some(piece));
            }
            if self.done {
                return Ok(None);
            }
            let Some(bytes) = self.opened.chunk().await? else {
                // A server may close without [DONE]; what it sent stands,
                // unless it sent nothing at all.
                self.done = true;
                self.events.push(b"\n\n");
                self.read_events()?;
                continue;
            };
            self.events.push(&bytes);
            self.read_events()?;
        }
    }

    fn read_events(&mut self) -> Result<(), RemoteError> {
        while let Some(data) = self.events.next_event() {
            if data.trim() == "[DONE]" {
                self.done = true;
                return Ok(());
            }
            let chunk: Value = serde_json::from_str(&data).map_err(|error| {
                RemoteError::Permanent(format!("{} streamed an event that is not JSON ({error})", self.opened.endpoint()))
            })?;
            if let Some(error) = chunk.get("error") {
                return Err(RemoteError::Transient(format!(
                    "{} streamed an error: {error}",
                    self.opened.endpoint()
                )));
            }
            if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str()
                && !text.is_empty()
            {
                self.pieces.push_back(Piece::Text(text.to_owned()));
            }
            if let Some(usage) = chunk.get("usage").filter(|u| u.is_object())
                && let Ok(usage) = serde_json::from_value(usage.clone())
            {
                self.pieces.push_back(Piece::Usage(usage));
            }
        }
        Ok(())
    }
}

/// Server-sent events from bytes as they arrive: each event's `data:` lines
/// joined by newlines, dispatched at a blank line; comments and other fields
/// are skipped (the WHATWG event-stream format, as much of it as a
/// chat-completions stream uses).
#[derive(Default)]
pub struct Sse {
    buffer: Vec<u8>,
    data: Option<String>,
    ready: VecDeque<String>,
}

impl Sse {
    /// Takes the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    self.ready.push_back(data);
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                let value = value.strip_prefix(' ').unwrap_or(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
        }
    }

    /// The next whole event's data.
    pub fn next_event(&mut self) -> Option<String> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<String> {
        let mut sse = Sse::default();
        let mut out = Vec::new();
        for chunk in chunks {
            sse.push(chunk.as_bytes());
            while let Some(event) = sse.next_event() {
                out.push(event);
            }
        }
        out
    }

    #[test]
    fn events_are_split_at_blank_lines_whatever_the_chunks() {
        let stream = "data: {\"a\":1}\n\n: a comment\nevent: x\ndata: two\ndata: lines\n\r\ndata:[DONE]\n\n";
        let expected = ["{\"a\":1}", "two\nlines", "[DONE]"];
        assert_eq!(events(&[stream]), expected);
        // Byte by byte, and with CRLF line ends.
        let pieces: Vec<String> = stream.chars().map(String::from).collect();
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(events(&pieces), expected);
        assert_eq!(events(&["data: x\r\n\r\n"]), ["x"]);
        // An event not ended by a blank line is not dispatched.
        assert!(events(&["data: half"]).is_empty());
    }
}

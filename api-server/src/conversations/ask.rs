//! Ask: a question answered in a conversation. The question is made
//! standalone from the earlier turns (by the chat endpoint, or by
//! `answer::standalone`), searched within the conversation's scope and what
//! the caller may search, and answered from the relevant passages: by the
//! chat endpoint, streamed, or extractively. The question and its answer are
//! kept in the conversation, in one write, before the last event is sent; a
//! caller who goes away, a failed endpoint or an unreachable Redis keeps
//! nothing.

use std::time::{Duration, Instant};

use chrono::Utc;
use folio_models::{
    chat::{self, Chat, Piece, Usage},
    remote::RemoteError,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Citation, Conversation, Conversations, Message, Role, answer, store};
use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    search::{self, Hit, Mode, Query},
};

/// What an answer says when no passage is relevant.
pub const NO_ANSWER: &str = "The documents you can search do not answer this: no passage found matches the question.";

/// The generator named for extractive answers.
pub const EXTRACTIVE: &str = "extractive";

/// Earlier questions and answers a chat endpoint is shown.
const HISTORY_TURNS: usize = 3;

/// The longest standalone query a chat endpoint is asked to write, in tokens.
const REWRITE_TOKENS: u32 = 96;

const ANSWER_PROMPT: &str = "You answer questions from numbered passages of the user's documents, and from nothing else. \
Cite each passage you use by its number in square brackets, such as [1] or [2, 3], right after what it supports. \
If the passages do not contain the answer, say that the documents do not answer the question. \
Answer in the language of the question, briefly.";

const REWRITE_PROMPT: &str = "Rewrite the last question of this conversation as one standalone search query that can be \
understood without the conversation. Answer with the query only.";

/// A question, its fields already valid.
#[derive(Debug, Clone)]
pub struct Question {
    pub conversation_id: Uuid,
    pub text: String,
    /// Passages to retrieve (none: `FOLIO_ASK_PASSAGES`).
    pub passages: Option<usize>,
}

/// What an Ask sends, in order: one retrieval, deltas, one done.
#[derive(Debug)]
pub enum Event {
    Retrieval(Retrieval),
    Delta(String),
    Done(Done),
}

/// The search an answer is drawn from.
#[derive(Debug)]
pub struct Retrieval {
    pub query: String,
    pub passages: Vec<Passage>,
    pub model: String,
    pub reranker: Option<String>,
}

/// One passage found, numbered from 1.
#[derive(Debug)]
pub struct Passage {
    pub number: u32,
    pub hit: Hit,
    pub relevant: bool,
}

/// The finished answer, as kept.
#[derive(Debug)]
pub struct Done {
    pub answer: String,
    pub citations: Vec<Citation>,
    pub no_answer: bool,
    pub generator: String,
    pub usage: Usage,
    pub timings: Timings,
    pub message_count: usize,
}

/// How long each step of an Ask took.
#[derive(Debug, Default)]
pub struct Timings {
    pub rewrite: Duration,
    pub retrieval: Duration,
    /// From the start to the first delta.
    pub first_delta: Option<Duration>,
    pub generation: Duration,
    pub total: Duration,
}

/// A relevant passage as an answer is drawn from it: where it comes from (on
/// one line, for a prompt), its text, and its citation (its number included).
struct Relevant {
    head: String,
    text: String,
    citation: Citation,
}

/// Where Ask's events go; a send fails once the caller went away.
type Events = mpsc::Sender<ApiResult<Event>>;

/// The caller went away: stop, keeping nothing.
fn gone() -> ApiError {
    ApiError::Unavailable("the caller cancelled the call".into())
}

async fn emit(events: &Events, event: Event) -> ApiResult<()> {
    events.send(Ok(event)).await.map_err(|_| gone())
}

/// A chat endpoint's failure, after its retries: the caller may ask again.
fn chat_error(chat: &Chat, error: RemoteError) -> ApiError {
    let (RemoteError::Transient(message) | RemoteError::Permanent(message)) = error;
    tracing::warn!(model = chat.model(), %message, "chat endpoint failed");
    ApiError::Unavailable(format!("the chat endpoint failed: {message}"))
}

impl Conversations {
    /// Answers `question` for `principal`, sending the events to `events`
    /// and, if it fails, the error as the last one.
    pub async fn ask(&self, principal: Principal, question: Question, events: Events) {
        if let Err(error) = self.answer(&principal, question, &events).await {
            let _ = events.send(Err(error)).await;
        }
    }

    async fn answer(&self, principal: &Principal, question: Question, events: &Events) -> ApiResult<()> {
        let started = Instant::now();
        let asked_at = Utc::now();
        let id = question.conversation_id;
        let (conversation, _) = store::get(&self.cache, principal.user_id, id).await?;
        store::check_room(&self.config, &conversation)?;

        let t = Instant::now();
        let query = self.standalone(&conversation, &question.text).await?;
        let rewrite = t.elapsed();

        let t = Instant::now();
        let outcome = self
            .search
            .run(
                principal,
                Query {
                    text: query.clone(),
                    top_k: question.passages.unwrap_or(self.config.passages),
                    mode: Mode::Hybrid,
                    document_ids: conversation.scope.document_ids.clone(),
                    labels: conversation.scope.labels.clone(),
                    rerank: true,
                },
            )
            .await
            .map_err(scope_error)?;
        let retrieval = t.elapsed();
        let asked = answer::terms(&query);
        let passages: Vec<Passage> = outcome
            .hits
            .into_iter()
            .enumerate()
            .map(|(i, hit)| Passage {
                number: i as u32 + 1,
                relevant: is_relevant(&hit, &asked, self.config.min_similarity),
                hit,
            })
            .collect();
        let relevant: Vec<Relevant> = passages
            .iter()
            .filter(|p| p.relevant)
            .map(|p| Relevant {
                head: passage_head(&p.hit),
                text: p.hit.chunk.text.clone(),
                citation: citation(p),
            })
            .collect();
        emit(
            events,
            Event::Retrieval(Retrieval {
                query: query.clone(),
                passages,
                model: outcome.model,
                reranker: outcome.reranker,
            }),
        )
        .await?;

        let t = Instant::now();
        let mut first_delta = None;
        let mut text = String::new();
        let mut usage = Usage::default();
        let mut delta = |piece: &str, text: &mut String| {
            first_delta.get_or_insert_with(|| started.elapsed());
            text.push_str(piece);
            Event::Delta(piece.to_owned())
        };
        let generator = match &self.chat {
            _ if relevant.is_empty() => {
                emit(events, delta(NO_ANSWER, &mut text)).await?;
                EXTRACTIVE.to_owned()
            }
            Some(chat) => {
                let messages = prompt(&conversation, &question.text, &relevant);
                let mut answer = chat.stream(&messages).await.map_err(|e| chat_error(chat, e))?;
                loop {
                    // Dropping `answer` (returning) closes the connection,
                    // which stops the generation upstream.
                    let piece = tokio::select! {
                        piece = answer.next() => piece.map_err(|e| chat_error(chat, e))?,
                        () = events.closed() => return Err(gone()),
                    };
                    match piece {
                        None => break,
                        Some(Piece::Text(piece)) => emit(events, delta(&piece, &mut text)).await?,
                        Some(Piece::Usage(counted)) => usage = counted,
                    }
                }
                chat.model().to_owned()
            }
            None => {
                let sources: Vec<answer::Source<'_>> = relevant
                    .iter()
                    .map(|source| answer::Source {
                        number: source.citation.number,
                        text: &source.text,
                    })
                    .collect();
                for (i, (number, sentence)) in answer::extractive(&query, &sources).into_iter().enumerate() {
                    let piece = format!("{}{sentence} [{number}]", if i == 0 { "" } else { " " });
                    emit(events, delta(&piece, &mut text)).await?;
                }
                EXTRACTIVE.to_owned()
            }
        };
        let generation = t.elapsed();

        let valid: Vec<u32> = relevant.iter().map(|source| source.citation.number).collect();
        let (answer, cited) = answer::citations(&text, &valid);
        let citations: Vec<Citation> = cited
            .iter()
            .filter_map(|n| {
                relevant
                    .iter()
                    .find(|source| source.citation.number == *n)
                    .map(|source| source.citation.clone())
            })
            .collect();
        let kept = store::add_turn(
            &self.cache,
            &self.config,
            principal.user_id,
            id,
            Message {
                role: Role::User,
                text: question.text,
                query,
                citations: Vec::new(),
                created_at: asked_at,
            },
            Message {
                role: Role::Assistant,
                text: answer.clone(),
                query: String::new(),
                citations: citations.clone(),
                created_at: Utc::now(),
            },
        )
        .await?;
        emit(
            events,
            Event::Done(Done {
                answer,
                citations,
                no_answer: relevant.is_empty(),
                generator,
                usage,
                timings: Timings {
                    rewrite,
                    retrieval,
                    first_delta,
                    generation,
                    total: started.elapsed(),
                },
                message_count: kept.messages.len(),
            }),
        )
        .await
    }

    /// The question as searched: a follow-up made standalone from the
    /// conversation's earlier turns.
    async fn standalone(&self, conversation: &Conversation, question: &str) -> ApiResult<String> {
        let Some(previous) = conversation.messages.iter().rev().find(|m| m.role == Role::User) else {
            return Ok(question.to_owned());
        };
        let Some(chat) = &self.chat else {
            let previous = if previous.query.is_empty() {
                &previous.text
            } else {
                &previous.query
            };
            return Ok(answer::standalone(question, Some(previous)));
        };
        let mut transcript = String::new();
        for message in history(conversation) {
            let who = if message.role == Role::User { "User" } else { "Assistant" };
            transcript.push_str(&format!("{who}: {}\n", message.text));
        }
        transcript.push_str(&format!("Last question: {question}"));
        let messages = [
            chat::Message::new(chat::Role::System, REWRITE_PROMPT),
            chat::Message::new(chat::Role::User, transcript),
        ];
        let (rewritten, _) = chat.complete(&messages, REWRITE_TOKENS).await.map_err(|e| chat_error(chat, e))?;
        let rewritten = rewritten.trim().trim_matches('"').trim();
        Ok(if rewritten.is_empty() {
            question.to_owned()
        } else {
            rewritten.to_owned()
        })
    }
}

/// The last [`HISTORY_TURNS`] questions and answers of a conversation.
fn history(conversation: &Conversation) -> &[Message] {
    let messages = &conversation.messages;
    &messages[messages.len().saturating_sub(2 * HISTORY_TURNS)..]
}

/// The messages a chat endpoint answers: the instructions, the recent
/// turns, then the numbered passages and the question.
fn prompt(conversation: &Conversation, question: &str, relevant: &[Relevant]) -> Vec<chat::Message> {
    let mut messages = vec![chat::Message::new(chat::Role::System, ANSWER_PROMPT)];
    for message in history(conversation) {
        let role = if message.role == Role::User {
            chat::Role::User
        } else {
            chat::Role::Assistant
        };
        messages.push(chat::Message::new(role, message.text.clone()));
    }
    let mut content = String::from("Passages:\n");
    for source in relevant {
        let Relevant { head, text, citation } = source;
        content.push_str(&format!("\n[{}] {head}\n{text}\n", citation.number));
    }
    content.push_str(&format!("\nQuestion: {question}"));
    messages.push(chat::Message::new(chat::Role::User, content));
    messages
}

/// Whether a passage found for a query of `asked` terms may answer it: a
/// keyword match (it has every word of the query), or a vector similarity of
/// at least `min_similarity` with one of the query's words in its text or
/// headings (a similarity alone is noise as often as not: a short question's
/// vector is mostly its "what is the").
fn is_relevant(hit: &Hit, asked: &[String], min_similarity: f64) -> bool {
    hit.scores.keyword_rank > 0
        || (hit.scores.vector >= min_similarity
            && (answer::mentions(asked, &hit.chunk.text)
                || hit
                    .chunk
                    .section_path
                    .iter()
                    .flatten()
                    .any(|heading| answer::mentions(asked, heading))))
}

/// Where a passage comes from, on one line: the document, the headings
/// above it and its pages.
fn passage_head(hit: &Hit) -> String {
    let mut head = hit.document_title.clone();
    let path: Vec<&str> = hit.chunk.section_path.iter().flatten().map(String::as_str).collect();
    if !path.is_empty() {
        head.push_str(" — ");
        head.push_str(&path.join(" › "));
    }
    match (hit.chunk.page_start, hit.chunk.page_end) {
        (Some(start), Some(end)) if end > start => head.push_str(&format!(" (pages {start}–{end})")),
        (Some(start), _) => head.push_str(&format!(" (page {start})")),
        _ => {}
    }
    head
}

fn citation(passage: &Passage) -> Citation {
    let chunk = &passage.hit.chunk;
    Citation {
        number: passage.number,
        chunk_id: chunk.id,
        document_id: chunk.document_id,
        document_title: passage.hit.document_title.clone(),
        filename: passage.hit.filename.clone(),
        section_path: chunk.section_path.iter().flatten().cloned().collect(),
        page_start: chunk.page_start.unwrap_or(0),
        page_end: chunk.page_end.unwrap_or(0),
    }
}

/// A search refused for the conversation's scope: documents deleted or no
/// longer shared, labels no longer used, since it was created.
fn scope_error(error: search::Error) -> ApiError {
    match error {
        search::Error::Api(error) => error,
        search::Error::Filters(bad) => {
            let mut gone: Vec<String> = bad.document_ids.iter().map(|(_, id)| format!("document {id}")).collect();
            gone.extend(bad.labels.iter().map(|(_, label)| format!("label {label:?}")));
            ApiError::FailedPrecondition(format!(
                "this conversation is limited to what you can no longer search ({}); start another",
                gone.join(", ")
            ))
            .because("CONVERSATION_SCOPE")
        }
    }
}

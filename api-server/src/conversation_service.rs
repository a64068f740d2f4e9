//! `folio.v1.ConversationService`, a shim over [`crate::conversations`]: each
//! RPC reads the request into domain terms (naming the request's fields in
//! what it refuses), calls the conversations' inner function, and converts
//! the answer (`convert.rs`). Ask runs in a task of its own that sends its
//! events into the stream, in the call's trace; when the caller goes away
//! the stream is dropped and the task stops at its next step.

use std::pin::Pin;

use folio_core::trace;
use folio_proto::v1::{
    self as pb, AskRequest, AskResponse, CreateConversationRequest, DeleteConversationRequest, DeleteConversationResponse,
    GetConversationRequest, ListConversationsRequest, ListConversationsResponse, conversation_service_server::ConversationService,
};
use futures_util::{Stream, StreamExt as _};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tonic_types::FieldViolation;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    auth,
    conversations::{Conversations, NewConversation, Scope, ask::Question, store::Cursor},
    convert::{ask_event_to_proto, conversation_to_proto, conversations_page_to_proto, to_id},
    error::{ApiError, ApiResult},
    page_token::page_size,
    search,
};

/// The longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// The longest question, in characters.
const MAX_QUESTION_CHARS: usize = 1000;
/// Scope entries a conversation may name, of each kind.
const MAX_SCOPE: usize = 100;
/// Ask's events buffered for a slow reader before the answer waits.
const ASK_BUFFER: usize = 64;

type AskStream = Pin<Box<dyn Stream<Item = Result<AskResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ConversationService for Conversations {
    async fn create_conversation(&self, request: Request<CreateConversationRequest>) -> Result<Response<pb::Conversation>, Status> {
        let principal = auth::principal(&request)?;
        let new = new_conversation(request.into_inner())?;
        let conversation = self.create(&principal, new).await?;
        let expires_at = self.expires_at(conversation.updated_at);
        Ok(Response::new(conversation_to_proto(conversation, expires_at, None)))
    }

    async fn get_conversation(&self, request: Request<GetConversationRequest>) -> Result<Response<pb::Conversation>, Status> {
        let principal = auth::principal(&request)?;
        let id = to_id("id", &request.get_ref().id)?;
        let conversation = self.get(&principal, id).await?;
        let expires_at = self.expires_at(conversation.updated_at);
        Ok(Response::new(conversation_to_proto(conversation, expires_at, None)))
    }

    async fn list_conversations(&self, request: Request<ListConversationsRequest>) -> Result<Response<ListConversationsResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let size = page_size(request.page_size, 20, 100)?;
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(Cursor::decode(token).ok_or_else(|| ApiError::invalid("page_token", "is not a token this list gave"))?),
        };
        let page = self.list(&principal, size, after).await?;
        Ok(Response::new(conversations_page_to_proto(page, |at| self.expires_at(at))))
    }

    async fn delete_conversation(
        &self,
        request: Request<DeleteConversationRequest>,
    ) -> Result<Response<DeleteConversationResponse>, Status> {
        let principal = auth::principal(&request)?;
        let id = to_id("id", &request.get_ref().id)?;
        self.delete(&principal, id).await?;
        Ok(Response::new(DeleteConversationResponse {}))
    }

    type AskStream = AskStream;

    async fn ask(&self, request: Request<AskRequest>) -> Result<Response<AskStream>, Status> {
        let principal = auth::principal(&request)?;
        let question = question_from_proto(request.into_inner())?;
        let (events, received) = mpsc::channel(ASK_BUFFER);
        let conversations = self.clone();
        let work = async move { conversations.ask(principal, question, events).await };
        let span = tracing::Span::current();
        match trace::current() {
            Some(context) => tokio::spawn(trace::scope(context, work).instrument(span)),
            None => tokio::spawn(work.instrument(span)),
        };
        let stream = ReceiverStream::new(received).map(|event| event.map(ask_event_to_proto).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A new conversation's details; every invalid field is named.
fn new_conversation(request: CreateConversationRequest) -> ApiResult<NewConversation> {
    let mut violations = Vec::new();
    let title = request.title.trim().to_owned();
    if title.chars().count() > MAX_TITLE_CHARS {
        violations.push(FieldViolation::new(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    if request.document_ids.len() > MAX_SCOPE {
        violations.push(FieldViolation::new(
            "document_ids",
            format!("must name at most {MAX_SCOPE} documents"),
        ));
    }
    if request.labels.len() > MAX_SCOPE {
        violations.push(FieldViolation::new("labels", format!("must name at most {MAX_SCOPE} labels")));
    }
    let (document_ids, labels) = search::read_filters(&request.document_ids, &request.labels, &mut violations);
    if !violations.is_empty() {
        return Err(ApiError::InvalidArgument(violations));
    }
    Ok(NewConversation {
        title,
        scope: Scope { document_ids, labels },
    })
}

/// The question an AskRequest asks; every invalid field is named.
fn question_from_proto(request: AskRequest) -> ApiResult<Question> {
    let mut violations = Vec::new();
    let conversation_id = match request.conversation_id.parse::<Uuid>() {
        Ok(id) => Some(id),
        Err(_) => {
            violations.push(FieldViolation::new("conversation_id", "must be a UUID"));
            None
        }
    };
    let text = request.question.trim().to_owned();
    if text.is_empty() {
        violations.push(FieldViolation::new("question", "must not be empty"));
    } else if text.chars().count() > MAX_QUESTION_CHARS {
        violations.push(FieldViolation::new(
            "question",
            format!("must be at most {MAX_QUESTION_CHARS} characters"),
        ));
    }
    let passages = match request.passages {
        0 => None,
        n @ 1..=20 => Some(n as usize),
        _ => {
            violations.push(FieldViolation::new("passages", "must be between 1 and 20"));
            None
        }
    };
    match conversation_id {
        Some(conversation_id) if violations.is_empty() => Ok(Question {
            conversation_id,
            text,
            passages,
        }),
        _ => Err(ApiError::InvalidArgument(violations)),
    }
}

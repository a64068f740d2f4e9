//! `folio.v1.DocumentService`: uploads (streamed or inline), reads and
//! management of documents. Each RPC is a shim over an inner function; a member
//! reaches only their own documents (anyone else's answers NOT_FOUND), an admin
//! everyone's.

use std::{collections::HashMap, pin::Pin, sync::Arc};

use bytes::Bytes;
use chrono::Utc;
use diesel_async::AsyncConnection as _;
use folio_auth::Role;
use folio_core::{blobs::Blobs, cache::Cache, config::DocumentsConfig};
use folio_db::{
    self as db,
    documents::{
        self,
        lifecycle::{self, LifecycleError, Moved, Note},
        state::{EventKind, Stage, State},
    },
    models::{
        chunk,
        document::{self, Cursor, Document, DocumentFilter, Order},
        document_event::{self, DocumentEvent, Scope},
    },
};
use folio_parse::{
    detect::{self, SNIFF_BYTES},
    parse::ParsedDocument,
};
use folio_proto::v1::{
    self as pb, CancelDocumentRequest, CreateDocumentRequest, DeleteDocumentRequest, DeleteDocumentResponse, DocumentMetadata,
    DownloadDocumentRequest, DownloadDocumentResponse, DownloadFormat, GetDocumentRequest, GetDocumentStatsRequest, ListChunksRequest,
    ListChunksResponse, ListDocumentEventsRequest, ListDocumentEventsResponse, ListDocumentsRequest, ListDocumentsResponse,
    RetryDocumentRequest, UploadDocumentRequest, UploadDocumentResponse, WatchDocumentRequest, WatchDocumentsRequest,
    document_service_server::DocumentService, upload_document_request::Part,
};
use futures_util::{Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::{
    auth::{self, Principal},
    error::{ApiError, ApiResult},
    page_token,
    settings::Settings,
    system::{timestamp, to_time},
    watch::{
        Hub,
        stream::{Target, Watch, WatchStream},
    },
};

const DOCUMENTS_TAG: &str = "d1";
const DOCUMENTS_BY_NAME_TAG: &str = "d2";
const CHUNKS_TAG: &str = "c1";

/// The DocumentService implementation.
pub struct Documents {
    pub pool: db::Pool,
    pub blobs: Blobs,
    pub cache: Cache,
    pub relay_wake: Arc<Notify>,
    pub hub: Hub,
    /// Cancelled at shutdown: open watch streams end with UNAVAILABLE.
    pub shutdown: CancellationToken,
    pub config: DocumentsConfig,
    /// The upload limit and other settings admins change at run time.
    pub settings: Settings,
    /// Tries per processing attempt (`FOLIO_MAX_ATTEMPTS`).
    pub max_tries: u32,
}

type ByteStream<'a> = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send + 'a>>;

#[tonic::async_trait]
impl DocumentService for Documents {
    async fn upload_document(
        &self,
        request: Request<Streaming<UploadDocumentRequest>>,
    ) -> Result<Response<UploadDocumentResponse>, Status> {
        let principal = auth::principal(&request)?;
        let mut stream = request.into_inner();
        let metadata = match stream.next().await {
            Some(Ok(UploadDocumentRequest {
                part: Some(Part::Metadata(metadata)),
            })) => metadata,
            Some(Ok(_)) => return Err(ApiError::invalid("metadata", "the first message must carry the metadata").into()),
            Some(Err(status)) => return Err(status),
            None => return Err(ApiError::invalid("metadata", "the stream was empty").into()),
        };
        let bytes: ByteStream<'_> = Box::pin(stream.map(|message| match message {
            Ok(UploadDocumentRequest {
                part: Some(Part::Chunk(bytes)),
            }) => Ok(Bytes::from(bytes)),
            Ok(_) => Err(ApiError::invalid("metadata", "only the first message may carry metadata").into()),
            Err(status) => Err(status),
        }));
        let document = self.store(&principal, metadata, bytes).await?;
        Ok(Response::new(UploadDocumentResponse { document: Some(document) }))
    }

    async fn create_document(&self, request: Request<CreateDocumentRequest>) -> Result<Response<UploadDocumentResponse>, Status> {
        let principal = auth::principal(&request)?;
        let CreateDocumentRequest { metadata, content } = request.into_inner();
        let metadata = metadata.ok_or_else(|| ApiError::invalid("metadata", "is required"))?;
        if content.len() as u64 > self.config.max_inline_bytes {
            return Err(ApiError::invalid(
                "content",
                format!(
                    "is over {} bytes; use UploadDocument for larger documents",
                    self.config.max_inline_bytes
                ),
            )
            .into());
        }
        let bytes: ByteStream<'_> = Box::pin(futures_util::stream::iter([Ok(Bytes::from(content))]));
        let document = self.store(&principal, metadata, bytes).await?;
        Ok(Response::new(UploadDocumentResponse { document: Some(document) }))
    }

    type WatchDocumentStream = WatchStream;
    type WatchDocumentsStream = WatchStream;

    async fn watch_document(&self, request: Request<WatchDocumentRequest>) -> Result<Response<WatchStream>, Status> {
        let principal = auth::principal(&request)?;
        let WatchDocumentRequest {
            document_id,
            after_event_id,
            follow,
        } = request.into_inner();
        let id = parse_id("document_id", &document_id)?;
        if after_event_id < 0 {
            return Err(ApiError::invalid("after_event_id", "must not be negative").into());
        }
        let permit = self.hub.admit(principal.user_id)?;
        // Subscribed before the document is read: nothing falls in between.
        let subscription = self.hub.subscribe(Scope::Document(id), None, principal.session_id);
        let found = self.visible(&principal, &document_id).await?;
        let watch = Watch::new(
            self.hub.clone(),
            self.pool.clone(),
            principal,
            Target::Document { id, follow },
            after_event_id,
            permit,
            subscription,
            self.shutdown.clone(),
            found.state.is_terminal(),
            false,
        );
        Ok(Response::new(watch.into_stream()))
    }

    async fn watch_documents(&self, request: Request<WatchDocumentsRequest>) -> Result<Response<WatchStream>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        if request.after_event_id.is_some_and(|after| after < 0) {
            return Err(ApiError::invalid("after_event_id", "must not be negative").into());
        }
        let filter = Arc::new(document_filter(
            &principal,
            request.state,
            &request.label,
            &request.filename_contains,
            request.created_after,
            request.created_before,
        )?);
        let scope = filter.owner.map_or(Scope::Everyone, Scope::Owner);
        let permit = self.hub.admit(principal.user_id)?;
        let subscription = self.hub.subscribe(scope, Some(filter.clone()), principal.session_id);
        // From now on: everything up to the settled horizon is skipped; the
        // hub hands every later event to the subscription.
        let cursor = match request.after_event_id {
            Some(after) => after,
            None => {
                let mut conn = self.pool.get().await.map_err(ApiError::from)?;
                document_event::settled(&mut conn).await.map_err(ApiError::from)?
            }
        };
        let watch = Watch::new(
            self.hub.clone(),
            self.pool.clone(),
            principal,
            Target::Documents { scope, filter },
            cursor,
            permit,
            subscription,
            self.shutdown.clone(),
            false,
            request.after_event_id.is_none(),
        );
        Ok(Response::new(watch.into_stream()))
    }

    async fn get_document(&self, request: Request<GetDocumentRequest>) -> Result<Response<pb::Document>, Status> {
        let principal = auth::principal(&request)?;
        let found = self.visible(&principal, &request.get_ref().id).await?;
        Ok(Response::new(to_proto(&found, false)))
    }

    async fn list_documents(&self, request: Request<ListDocumentsRequest>) -> Result<Response<ListDocumentsResponse>, Status> {
        let principal = auth::principal(&request)?;
        Ok(Response::new(self.list(&principal, request.into_inner()).await?))
    }

    async fn delete_document(&self, request: Request<DeleteDocumentRequest>) -> Result<Response<DeleteDocumentResponse>, Status> {
        let principal = auth::principal(&request)?;
        let found = self.visible(&principal, &request.get_ref().id).await?;
        let mut conn = self.pool.get().await.map_err(ApiError::from)?;
        let deleted = match lifecycle::delete(&mut conn, found.id).await {
            Ok(deleted) => Some(deleted),
            // Deleted meanwhile by another call: deleting is idempotent.
            Err(LifecycleError::NotFound(_)) => None,
            Err(error) => return Err(ApiError::from(error).into()),
        };
        drop(conn);
        if let Some(deleted) = deleted {
            // Blobs go after the commit: a failure here leaves an orphan blob,
            // never a row pointing at nothing.
            for key in blob_keys(&deleted) {
                if let Err(error) = self.blobs.delete(&key).await {
                    tracing::warn!(%error, key, "blob of a deleted document not removed");
                }
            }
        }
        crate::audit::note(crate::audit::AuditNote {
            target: format!("document:{}", found.id),
            ..Default::default()
        });
        Ok(Response::new(DeleteDocumentResponse {}))
    }

    async fn cancel_document(&self, request: Request<CancelDocumentRequest>) -> Result<Response<pb::Document>, Status> {
        let principal = auth::principal(&request)?;
        Ok(Response::new(self.cancel(&principal, &request.get_ref().id).await?))
    }

    async fn retry_document(&self, request: Request<RetryDocumentRequest>) -> Result<Response<pb::Document>, Status> {
        let principal = auth::principal(&request)?;
        Ok(Response::new(self.retry(&principal, &request.get_ref().id).await?))
    }

    async fn list_document_events(
        &self,
        request: Request<ListDocumentEventsRequest>,
    ) -> Result<Response<ListDocumentEventsResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let found = self.visible(&principal, &request.document_id).await?;
        if request.after_event_id < 0 {
            return Err(ApiError::invalid("after_event_id", "must not be negative").into());
        }
        let limit = page_token::page_size(request.page_size, 100, 1000)?;
        let mut conn = self.pool.get().await.map_err(ApiError::from)?;
        let events = document_event::list(&mut conn, found.id, request.after_event_id, limit)
            .await
            .map_err(ApiError::from)?;
        let next_after_event_id = if events.len() as i64 == limit {
            events.last().map_or(0, |e| e.id)
        } else {
            0
        };
        Ok(Response::new(ListDocumentEventsResponse {
            events: events.iter().map(event_to_proto).collect(),
            next_after_event_id,
        }))
    }

    async fn get_document_stats(&self, request: Request<GetDocumentStatsRequest>) -> Result<Response<pb::DocumentStats>, Status> {
        let principal = auth::principal(&request)?;
        Ok(Response::new(self.stats(&principal, &request.get_ref().owner_id).await?))
    }

    type DownloadDocumentStream = Pin<Box<dyn Stream<Item = Result<DownloadDocumentResponse, Status>> + Send>>;

    async fn download_document(&self, request: Request<DownloadDocumentRequest>) -> Result<Response<Self::DownloadDocumentStream>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let found = self.visible(&principal, &request.id).await?;
        let format = DownloadFormat::try_from(request.format).map_err(|_| ApiError::invalid("format", "is not a known format"))?;
        Ok(Response::new(self.download(found, format).await?))
    }

    async fn list_chunks(&self, request: Request<ListChunksRequest>) -> Result<Response<ListChunksResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let found = self.visible(&principal, &request.document_id).await?;
        let limit = page_token::page_size(request.page_size, 50, 500)?;
        let after = match request.page_token.as_str() {
            "" => -1,
            token => page_token::decode_number(CHUNKS_TAG, token)
                .ok_or_else(|| ApiError::invalid("page_token", "is not a token this list issued"))? as i32,
        };
        let mut conn = self.pool.get().await.map_err(ApiError::from)?;
        let mut rows = chunk::list(&mut conn, found.id, after, limit + 1).await.map_err(ApiError::from)?;
        let next_page_token = page_token::next_token(&mut rows, limit, |c| page_token::encode_number(CHUNKS_TAG, i64::from(c.ordinal)));
        Ok(Response::new(ListChunksResponse {
            chunks: rows
                .into_iter()
                .map(|c| pb::Chunk {
                    id: c.id,
                    document_id: c.document_id.to_string(),
                    ordinal: c.ordinal,
                    text: c.text,
                    section_path: c.section_path.into_iter().flatten().collect(),
                    page_start: c.page_start.unwrap_or(0),
                    page_end: c.page_end.unwrap_or(0),
                    token_count: c.token_count,
                })
                .collect(),
            next_page_token,
        }))
    }
}

/// Metadata after validation.
struct Metadata {
    filename: String,
    content_type: Option<String>,
    title: String,
    labels: Vec<String>,
    idempotency_key: Option<String>,
}

impl Metadata {
    fn parse(metadata: DocumentMetadata) -> ApiResult<Metadata> {
        let mut violations = Vec::new();
        let filename = display_filename(&metadata.filename);
        if filename.is_empty() {
            violations.push(tonic_types::FieldViolation::new(
                "metadata.filename",
                "is required (display text, at most 255 characters)",
            ));
        }
        if metadata.labels.len() > 32 {
            violations.push(tonic_types::FieldViolation::new("metadata.labels", "at most 32 labels"));
        }
        let labels: Vec<String> = metadata.labels.iter().map(|l| l.trim().to_owned()).collect();
        if labels
            .iter()
            .any(|l| l.is_empty() || l.chars().count() > 64 || l.chars().any(char::is_control))
        {
            violations.push(tonic_types::FieldViolation::new(
                "metadata.labels",
                "each label is 1 to 64 characters without control characters",
            ));
        }
        if metadata.title.chars().count() > 500 {
            violations.push(tonic_types::FieldViolation::new("metadata.title", "at most 500 characters"));
        }
        if metadata.idempotency_key.len() > 200 {
            violations.push(tonic_types::FieldViolation::new(
                "metadata.idempotency_key",
                "at most 200 characters",
            ));
        }
        if metadata.content_type.len() > 200 {
            violations.push(tonic_types::FieldViolation::new("metadata.content_type", "at most 200 characters"));
        }
        if !violations.is_empty() {
            return Err(ApiError::InvalidArgument(violations));
        }
        let mut labels = labels;
        labels.sort();
        labels.dedup();
        Ok(Metadata {
            filename,
            content_type: Some(metadata.content_type.trim().to_owned()).filter(|c| !c.is_empty()),
            title: metadata.title.trim().to_owned(),
            labels,
            idempotency_key: Some(metadata.idempotency_key).filter(|k| !k.is_empty()),
        })
    }
}

/// A filename as display text: the last path part, without control characters
/// or NUL, trimmed, at most 255 characters.
pub fn display_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    cleaned.trim().chars().take(255).collect()
}

impl Documents {
    /// Stores an upload: sniffs the format, streams the bytes to the blob store
    /// while hashing them, then commits the row, its first event and the
    /// processing job together. Anything refused leaves nothing behind.
    async fn store(&self, principal: &Principal, metadata: DocumentMetadata, mut bytes: ByteStream<'_>) -> ApiResult<pb::Document> {
        let metadata = Metadata::parse(metadata)?;
        if let Some(key) = &metadata.idempotency_key {
            let mut conn = self.pool.get().await?;
            if let Some(existing) = document::find_existing(&mut conn, principal.user_id, &[], Some(key)).await?
                && existing.idempotency_key.as_deref() == Some(key)
            {
                return Ok(to_proto(&existing, false));
            }
        }

        // Sniff the format from the first bytes before writing anything.
        let mut head = Vec::new();
        let mut pending = Vec::new();
        while head.len() < SNIFF_BYTES {
            match bytes.next().await {
                Some(part) => {
                    let part = part.map_err(|status| ApiError::invalid("content", format!("upload interrupted: {}", status.message())))?;
                    head.extend_from_slice(&part[..part.len().min(SNIFF_BYTES - head.len())]);
                    pending.push(part);
                }
                None => break,
            }
        }
        if head.is_empty() {
            return Err(ApiError::invalid("content", "is empty"));
        }
        let format = detect::detect(&head, &metadata.filename, metadata.content_type.as_deref())
            .map_err(|what| ApiError::invalid("content", format!("is {what}; supported: {}", detect::SUPPORTED)))?;

        let id = Uuid::now_v7();
        let blob_key = format!("documents/{}/{id}", principal.user_id);
        let mut writer = self.blobs.writer(&blob_key);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let limit = self.settings.max_upload_bytes();
        let written: ApiResult<()> = async {
            let mut parts = futures_util::stream::iter(pending.into_iter().map(Ok)).chain(&mut bytes);
            while let Some(part) = parts.next().await {
                let part = part.map_err(|status| ApiError::invalid("content", format!("upload interrupted: {}", status.message())))?;
                size += part.len() as u64;
                if size > limit {
                    return Err(ApiError::invalid("content", format!("is over the limit of {limit} bytes")));
                }
                hasher.update(&part);
                writer.write(part).await.map_err(|e| ApiError::Internal(e.into()))?;
            }
            Ok(())
        }
        .await;
        if let Err(error) = written {
            writer.abort().await;
            return Err(error);
        }
        writer.finish().await.map_err(|e| ApiError::Internal(e.into()))?;
        let sha256 = hasher.finalize().to_vec();

        let now = Utc::now();
        let row = Document {
            id,
            owner_id: principal.user_id,
            filename: metadata.filename,
            title: metadata.title,
            content_type: metadata.content_type.unwrap_or_else(|| detect::content_type(format).to_owned()),
            format: format.as_str().to_owned(),
            labels: metadata.labels.into_iter().map(Some).collect(),
            size_bytes: size as i64,
            sha256: sha256.clone(),
            blob_key: blob_key.clone(),
            idempotency_key: metadata.idempotency_key.clone(),
            state: State::Queued,
            stage: Some(Stage::Store),
            attempt: 1,
            try_number: 0,
            max_tries: self.max_tries as i32,
            next_retry_at: None,
            error_code: None,
            error_message: None,
            will_retry: false,
            cancel_requested: false,
            pages: None,
            characters: None,
            chunk_count: None,
            stage_ms: serde_json::json!({}),
            created_at: now,
            updated_at: now,
            completed_at: None,
            try_token: None,
        };
        let note = Note {
            percent: 5,
            message: format!("stored {size} bytes as {}", format.as_str()),
            details: serde_json::json!({ "bytes": size, "format": format.as_str() }),
        };
        let mut conn = self.pool.get().await?;
        let committed = conn.transaction(async |conn| lifecycle::store(conn, &row, note).await).await?;
        match committed {
            Some(Moved { document: stored, event }) => {
                self.relay_wake.notify_one();
                if let Some(event) = &event {
                    documents::announce(&self.cache, event).await;
                }
                crate::audit::note(crate::audit::AuditNote {
                    target: format!("document:{id}"),
                    ..Default::default()
                });
                Ok(to_proto(&stored, false))
            }
            None => {
                // The same bytes (or key) exist: return that document instead.
                let _ = self.blobs.delete(&blob_key).await;
                let existing = document::find_existing(&mut conn, principal.user_id, &sha256, metadata.idempotency_key.as_deref())
                    .await?
                    .ok_or_else(|| ApiError::Unavailable("a concurrent upload is in progress; try again".into()))?;
                let replay = metadata.idempotency_key.is_some() && existing.idempotency_key == metadata.idempotency_key;
                Ok(to_proto(&existing, !replay))
            }
        }
    }

    /// The document `id` if the caller may see it; NOT_FOUND otherwise.
    async fn visible(&self, principal: &Principal, id: &str) -> ApiResult<Document> {
        let id = parse_id("id", id)?;
        let mut conn = self.pool.get().await?;
        document::find(&mut conn, id)
            .await?
            .filter(|d| principal.role == Role::Admin || d.owner_id == principal.user_id)
            .ok_or_else(|| ApiError::NotFound(format!("no document {id}")))
    }

    async fn list(&self, principal: &Principal, request: ListDocumentsRequest) -> ApiResult<ListDocumentsResponse> {
        let limit = page_token::page_size(request.page_size, 50, 500)?;
        let order = match request.order_by.trim() {
            "" | "created_at desc" => Order::CreatedDesc,
            "created_at asc" | "created_at" => Order::CreatedAsc,
            "filename asc" | "filename" => Order::FilenameAsc,
            _ => {
                return Err(ApiError::invalid(
                    "order_by",
                    "must be \"created_at desc\", \"created_at asc\" or \"filename asc\"",
                ));
            }
        };
        let after = match (request.page_token.as_str(), order) {
            ("", _) => None,
            (token, Order::FilenameAsc) => {
                let (name, id) = page_token::decode_text_id(DOCUMENTS_BY_NAME_TAG, token)
                    .ok_or_else(|| ApiError::invalid("page_token", "is not a token this list issued"))?;
                Some(Cursor::Filename(name, id))
            }
            (token, _) => {
                let (at, id) = page_token::decode_time_id(DOCUMENTS_TAG, token)
                    .ok_or_else(|| ApiError::invalid("page_token", "is not a token this list issued"))?;
                Some(Cursor::Created(at, id))
            }
        };
        let filter = document_filter(
            principal,
            request.state,
            &request.label,
            &request.filename_contains,
            request.created_after,
            request.created_before,
        )?;
        let mut conn = self.pool.get().await?;
        let mut rows = document::list(&mut conn, &filter, order, after, limit + 1).await?;
        let next_page_token = page_token::next_token(&mut rows, limit, |d| match order {
            Order::FilenameAsc => page_token::encode_text_id(DOCUMENTS_BY_NAME_TAG, (&d.filename, d.id)),
            _ => page_token::encode_time_id(DOCUMENTS_TAG, (d.created_at, d.id)),
        });
        Ok(ListDocumentsResponse {
            documents: rows.iter().map(|d| to_proto(d, false)).collect(),
            next_page_token,
        })
    }

    async fn cancel(&self, principal: &Principal, id: &str) -> ApiResult<pb::Document> {
        let found = self.visible(principal, id).await?;
        let mut conn = self.pool.get().await?;
        let moved = conn.transaction(async |conn| lifecycle::cancel(conn, found.id).await).await?;
        if let Some(event) = &moved.event {
            documents::announce(&self.cache, event).await;
        }
        Ok(to_proto(&moved.document, false))
    }

    async fn retry(&self, principal: &Principal, id: &str) -> ApiResult<pb::Document> {
        let found = self.visible(principal, id).await?;
        let mut conn = self.pool.get().await?;
        let moved = conn
            .transaction(async |conn| lifecycle::retry_requested(conn, found.id).await)
            .await?;
        self.relay_wake.notify_one();
        if let Some(event) = &moved.event {
            documents::announce(&self.cache, event).await;
        }
        Ok(to_proto(&moved.document, false))
    }
}

fn parse_id(field: &str, id: &str) -> ApiResult<Uuid> {
    id.parse().map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// The filters ListDocuments and WatchDocuments share: the caller's own
/// documents (an admin: everyone's), then the request's conditions.
fn document_filter(
    principal: &Principal,
    state: i32,
    label: &str,
    filename_contains: &str,
    created_after: Option<prost_types::Timestamp>,
    created_before: Option<prost_types::Timestamp>,
) -> ApiResult<DocumentFilter> {
    Ok(DocumentFilter {
        owner: (principal.role != Role::Admin).then_some(principal.user_id),
        state: match state {
            0 => None,
            value => Some(state_from_proto(
                pb::DocumentState::try_from(value).map_err(|_| ApiError::invalid("state", "is not a known state"))?,
            )),
        },
        label: Some(label.trim().to_owned()).filter(|l| !l.is_empty()),
        filename_contains: Some(filename_contains.trim().to_owned()).filter(|f| !f.is_empty()),
        created_after: created_after.map(|t| to_time("created_after", t)).transpose()?,
        created_before: created_before.map(|t| to_time("created_before", t)).transpose()?,
    })
}

/// Bytes per DownloadDocument message.
const DOWNLOAD_PART: usize = 64 * 1024;

impl Documents {
    async fn stats(&self, principal: &Principal, owner_id: &str) -> ApiResult<pb::DocumentStats> {
        let owner = match (owner_id.trim(), principal.role) {
            ("", Role::Admin) => None,
            ("", _) => Some(principal.user_id),
            (id, Role::Admin) => Some(id.parse().map_err(|_| ApiError::invalid("owner_id", "must be a UUID"))?),
            (_, _) => {
                return Err(ApiError::PermissionDenied(
                    "only an admin may ask for another owner's statistics".into(),
                ));
            }
        };
        let mut conn = self.pool.get().await?;
        let counts = document::counts_by_state(&mut conn, owner).await?;
        let timings = document::stage_timings(&mut conn, owner).await?;
        Ok(pb::DocumentStats {
            total_documents: counts.iter().map(|c| c.documents).sum(),
            total_bytes: counts.iter().map(|c| c.bytes).sum(),
            total_chunks: counts.iter().map(|c| c.chunks).sum(),
            states: counts
                .iter()
                .map(|c| pb::StateStats {
                    state: state_to_proto(c.state) as i32,
                    documents: c.documents,
                    bytes: c.bytes,
                    chunks: c.chunks,
                })
                .collect(),
            stages: timings
                .iter()
                .map(|t| pb::StageStats {
                    stage: stage_to_proto(Some(t.stage)) as i32,
                    p50_ms: t.p50,
                    p95_ms: t.p95,
                    samples: t.samples,
                })
                .collect(),
        })
    }

    async fn download(&self, found: Document, format: DownloadFormat) -> ApiResult<<Self as DocumentService>::DownloadDocumentStream> {
        if format == DownloadFormat::Original {
            let parts = self.blobs.stream(&found.blob_key).await.map_err(|e| ApiError::Internal(e.into()))?;
            let content_type = found.content_type.clone();
            let mut first = true;
            let stream = parts.map(move |part| match part {
                Ok(data) => {
                    let content_type = if std::mem::take(&mut first) {
                        content_type.clone()
                    } else {
                        String::new()
                    };
                    Ok(DownloadDocumentResponse {
                        content_type,
                        data: data.to_vec(),
                    })
                }
                Err(error) => {
                    tracing::error!(%error, "download interrupted");
                    Err(Status::unavailable("the blob store failed mid-download; try again"))
                }
            });
            return Ok(Box::pin(stream));
        }
        let parsed = match self.blobs.get(&folio_db::documents::parsed_key(found.id, found.attempt)).await {
            Ok(bytes) => serde_json::from_slice::<ParsedDocument>(&bytes).map_err(|e| ApiError::Internal(e.into()))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ApiError::FailedPrecondition(format!(
                    "the document is {} and has not been parsed yet",
                    found.state
                )));
            }
            Err(error) => return Err(ApiError::Internal(error.into())),
        };
        let (content_type, body) = match format {
            DownloadFormat::Json => {
                let mut conn = self.pool.get().await?;
                let chunks = chunk::list(&mut conn, found.id, -1, i64::MAX).await?;
                ("application/json", render::json(&found, &parsed, &chunks).to_string())
            }
            DownloadFormat::Markdown => ("text/markdown; charset=utf-8", render::markdown(&found, &parsed)),
            _ => ("text/plain; charset=utf-8", render::text(&parsed)),
        };
        let bytes = body.into_bytes();
        let messages: Vec<Result<DownloadDocumentResponse, Status>> = bytes
            .chunks(DOWNLOAD_PART)
            .enumerate()
            .map(|(i, part)| {
                Ok(DownloadDocumentResponse {
                    content_type: if i == 0 { content_type.to_owned() } else { String::new() },
                    data: part.to_vec(),
                })
            })
            .collect();
        Ok(Box::pin(futures_util::stream::iter(messages)))
    }
}

/// The parsed forms of DownloadDocument.
mod render {
    use folio_db::models::{chunk::Chunk, document::Document};
    use folio_parse::parse::ParsedDocument;

    fn title<'a>(document: &'a Document, parsed: &'a ParsedDocument) -> &'a str {
        if !document.title.is_empty() {
            &document.title
        } else {
            parsed.title.as_deref().unwrap_or(&document.filename)
        }
    }

    /// Sections (runs of blocks under the same headings) with their blocks,
    /// and the indexed chunks.
    pub fn json(document: &Document, parsed: &ParsedDocument, chunks: &[Chunk]) -> serde_json::Value {
        let mut sections: Vec<serde_json::Value> = Vec::new();
        let mut current: Option<(Vec<String>, Vec<serde_json::Value>)> = None;
        for block in &parsed.blocks {
            if current.as_ref().is_none_or(|(path, _)| *path != block.section_path) {
                if let Some((path, blocks)) = current.take() {
                    sections.push(serde_json::json!({ "path": path, "blocks": blocks }));
                }
                current = Some((block.section_path.clone(), Vec::new()));
            }
            if let Some((_, blocks)) = current.as_mut() {
                blocks.push(serde_json::json!({ "page": block.page, "text": block.text }));
            }
        }
        if let Some((path, blocks)) = current {
            sections.push(serde_json::json!({ "path": path, "blocks": blocks }));
        }
        serde_json::json!({
            "id": document.id,
            "title": title(document, parsed),
            "filename": document.filename,
            "format": document.format,
            "pages": parsed.pages,
            "sections": sections,
            "chunks": chunks.iter().map(|c| serde_json::json!({
                "ordinal": c.ordinal,
                "section_path": c.section_path.iter().flatten().collect::<Vec<_>>(),
                "page_start": c.page_start,
                "page_end": c.page_end,
                "text": c.text,
            })).collect::<Vec<_>>(),
        })
    }

    /// Headings where the section path changes, then the blocks as paragraphs.
    pub fn markdown(document: &Document, parsed: &ParsedDocument) -> String {
        let mut out = format!("# {}\n\n", title(document, parsed));
        let mut path: Vec<String> = Vec::new();
        for block in &parsed.blocks {
            if block.section_path != path {
                let common = path.iter().zip(&block.section_path).take_while(|(a, b)| a == b).count();
                for (depth, heading) in block.section_path.iter().enumerate().skip(common) {
                    if depth == 0 && heading == title(document, parsed) {
                        continue;
                    }
                    out.push_str(&format!("{} {heading}\n\n", "#".repeat((depth + 2).min(6))));
                }
                path = block.section_path.clone();
            }
            out.push_str(&block.text);
            out.push_str("\n\n");
        }
        out
    }

    /// The blocks as paragraphs.
    pub fn text(parsed: &ParsedDocument) -> String {
        parsed.blocks.iter().map(|b| b.text.as_str()).collect::<Vec<_>>().join("\n\n")
    }
}

/// Every blob a document may have: its bytes, its parse results and any
/// vectors saved for a retry.
pub fn blob_keys(document: &Document) -> Vec<String> {
    let mut keys = vec![document.blob_key.clone()];
    keys.extend((1..=document.attempt).map(|attempt| folio_db::documents::parsed_key(document.id, attempt)));
    keys.extend((1..=document.attempt).map(|attempt| folio_db::documents::embedded_key(document.id, attempt)));
    keys
}

/// The lifecycle state of a protobuf state (UNSPECIFIED reads as QUEUED).
pub fn state_from_proto(value: pb::DocumentState) -> State {
    match value {
        pb::DocumentState::Queued | pb::DocumentState::Unspecified => State::Queued,
        pb::DocumentState::Processing => State::Processing,
        pb::DocumentState::RetryWait => State::RetryWait,
        pb::DocumentState::Ready => State::Ready,
        pb::DocumentState::Failed => State::Failed,
        pb::DocumentState::Cancelled => State::Cancelled,
    }
}

fn state_to_proto(state: State) -> pb::DocumentState {
    match state {
        State::Queued => pb::DocumentState::Queued,
        State::Processing => pb::DocumentState::Processing,
        State::RetryWait => pb::DocumentState::RetryWait,
        State::Ready => pb::DocumentState::Ready,
        State::Failed => pb::DocumentState::Failed,
        State::Cancelled => pb::DocumentState::Cancelled,
    }
}

fn stage_to_proto(stage: Option<Stage>) -> pb::Stage {
    match stage {
        Some(Stage::Store) => pb::Stage::Store,
        Some(Stage::Parse) => pb::Stage::Parse,
        Some(Stage::Chunk) => pb::Stage::Chunk,
        Some(Stage::Embed) => pb::Stage::Embed,
        Some(Stage::Index) => pb::Stage::Index,
        None => pb::Stage::Unspecified,
    }
}

fn kind_to_proto(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Started => pb::EventKind::Started,
        EventKind::Progress => pb::EventKind::Progress,
        EventKind::Completed => pb::EventKind::Completed,
        EventKind::Failed => pb::EventKind::EventFailed,
        EventKind::RetryScheduled => pb::EventKind::RetryScheduled,
        EventKind::Cancelled => pb::EventKind::EventCancelled,
    }
}

/// The protobuf form of a document.
pub fn to_proto(d: &Document, duplicate: bool) -> pb::Document {
    let stage_millis: HashMap<String, i64> = d
        .stage_ms
        .as_object()
        .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_i64()?))).collect())
        .unwrap_or_default();
    pb::Document {
        id: d.id.to_string(),
        owner_id: d.owner_id.to_string(),
        filename: d.filename.clone(),
        title: d.title.clone(),
        content_type: d.content_type.clone(),
        format: d.format.clone(),
        labels: d.labels.iter().flatten().cloned().collect(),
        size_bytes: d.size_bytes,
        sha256: d.sha256.iter().map(|b| format!("{b:02x}")).collect(),
        state: state_to_proto(d.state) as i32,
        stage: stage_to_proto(d.stage) as i32,
        attempt: d.attempt,
        try_number: d.try_number,
        max_tries: d.max_tries,
        next_retry_at: d.next_retry_at.map(timestamp),
        error_code: d.error_code.clone().unwrap_or_default(),
        error_message: d.error_message.clone().unwrap_or_default(),
        will_retry: d.will_retry,
        pages: d.pages.unwrap_or(0),
        characters: d.characters.unwrap_or(0),
        chunks: d.chunk_count.unwrap_or(0),
        stage_millis,
        created_at: Some(timestamp(d.created_at)),
        updated_at: Some(timestamp(d.updated_at)),
        completed_at: d.completed_at.map(timestamp),
        duplicate,
    }
}

/// The protobuf form of an event.
pub fn event_to_proto(e: &DocumentEvent) -> pb::DocumentEvent {
    pb::DocumentEvent {
        id: e.id,
        document_id: e.document_id.to_string(),
        attempt: e.attempt,
        stage: stage_to_proto(Some(e.stage)) as i32,
        kind: kind_to_proto(e.kind) as i32,
        percent: e.percent,
        message: e.message.clone(),
        details: json_to_struct(&e.details),
        created_at: Some(timestamp(e.created_at)),
        state: state_to_proto(e.state) as i32,
    }
}

fn json_to_struct(value: &serde_json::Value) -> Option<prost_types::Struct> {
    let object = value.as_object()?;
    Some(prost_types::Struct {
        fields: object.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect(),
    })
}

fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(_) => Kind::StructValue(json_to_struct(value).unwrap_or_default()),
    };
    prost_types::Value { kind: Some(kind) }
}

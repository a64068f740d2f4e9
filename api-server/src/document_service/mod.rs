//! `folio.v1.DocumentService`: uploads (streamed or inline), reads and
//! management of documents. Each RPC is a shim over an inner function; a member
//! reaches only their own documents (anyone else's answers NOT_FOUND), an admin
//! everyone's.

use std::{pin::Pin, sync::Arc};

use bytes::Bytes;
use diesel_async::AsyncConnection as _;
use folio_core::{blobs::Blobs, cache::Cache, config::DocumentsConfig};
use folio_db as db;
use folio_db::{
    documents::{
        self,
        lifecycle::{self, LifecycleError},
    },
    models::{
        chunk,
        document::{self, Cursor, Document, DocumentFilter, Order},
        document_event::{self, Scope},
    },
};
use folio_proto::v1::{
    self as pb, CancelDocumentRequest, CreateDocumentRequest, DeleteDocumentRequest, DeleteDocumentResponse, DownloadDocumentRequest,
    DownloadDocumentResponse, DownloadFormat, GetDocumentRequest, GetDocumentStatsRequest, ListChunksRequest, ListChunksResponse,
    ListDocumentEventsRequest, ListDocumentEventsResponse, ListDocumentsRequest, ListDocumentsResponse, RetryDocumentRequest,
    UploadDocumentRequest, UploadDocumentResponse, WatchDocumentRequest, WatchDocumentsRequest, document_service_server::DocumentService,
    upload_document_request::Part,
};
use futures_util::{Stream, StreamExt as _};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::{
    auth::{self, Principal},
    convert::{document_to_proto as to_proto, event_to_proto, stage_to_proto, state_from_proto, state_to_proto, to_time},
    error::{ApiError, ApiResult},
    page_token,
    settings::Settings,
    watch::{
        Hub,
        stream::{Target, Watch, WatchStream},
    },
};

mod download;
mod upload;

pub use download::blob_keys;
pub use upload::display_filename;

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
        Ok(Response::new(self.watch_one(principal, request.into_inner()).await?))
    }

    async fn watch_documents(&self, request: Request<WatchDocumentsRequest>) -> Result<Response<WatchStream>, Status> {
        let principal = auth::principal(&request)?;
        Ok(Response::new(self.watch_all(principal, request.into_inner()).await?))
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
        self.delete(&principal, &request.get_ref().id).await?;
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
        Ok(Response::new(self.events(&principal, request.into_inner()).await?))
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
        Ok(Response::new(self.chunks(&principal, request.into_inner()).await?))
    }
}

impl Documents {
    /// A stream of one document's events: replay after the cursor, then live.
    async fn watch_one(&self, principal: Principal, request: WatchDocumentRequest) -> ApiResult<WatchStream> {
        let WatchDocumentRequest {
            document_id,
            after_event_id,
            follow,
        } = request;
        let id = parse_id("document_id", &document_id)?;
        if after_event_id < 0 {
            return Err(ApiError::invalid("after_event_id", "must not be negative"));
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
        Ok(watch.into_stream())
    }

    /// A stream of the events of every document the caller reaches that
    /// passes the request's filters.
    async fn watch_all(&self, principal: Principal, request: WatchDocumentsRequest) -> ApiResult<WatchStream> {
        if request.after_event_id.is_some_and(|after| after < 0) {
            return Err(ApiError::invalid("after_event_id", "must not be negative"));
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
                let mut conn = self.pool.get().await?;
                document_event::settled(&mut conn).await?
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
        Ok(watch.into_stream())
    }

    /// Deletes the document, then its blobs.
    async fn delete(&self, principal: &Principal, id: &str) -> ApiResult<()> {
        let found = self.visible(principal, id).await?;
        let mut conn = self.pool.get().await?;
        let deleted = match lifecycle::delete(&mut conn, found.id).await {
            Ok(deleted) => Some(deleted),
            // Deleted meanwhile by another call: deleting is idempotent.
            Err(LifecycleError::NotFound(_)) => None,
            Err(error) => return Err(error.into()),
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
        Ok(())
    }

    async fn events(&self, principal: &Principal, request: ListDocumentEventsRequest) -> ApiResult<ListDocumentEventsResponse> {
        let found = self.visible(principal, &request.document_id).await?;
        if request.after_event_id < 0 {
            return Err(ApiError::invalid("after_event_id", "must not be negative"));
        }
        let limit = page_token::page_size(request.page_size, 100, 1000)?;
        let mut conn = self.pool.get().await?;
        let events = document_event::list(&mut conn, found.id, request.after_event_id, limit).await?;
        let next_after_event_id = if events.len() as i64 == limit {
            events.last().map_or(0, |e| e.id)
        } else {
            0
        };
        Ok(ListDocumentEventsResponse {
            events: events.iter().map(event_to_proto).collect(),
            next_after_event_id,
        })
    }

    async fn chunks(&self, principal: &Principal, request: ListChunksRequest) -> ApiResult<ListChunksResponse> {
        let found = self.visible(principal, &request.document_id).await?;
        let limit = page_token::page_size(request.page_size, 50, 500)?;
        let after = match request.page_token.as_str() {
            "" => -1,
            token => page_token::decode_number(CHUNKS_TAG, token)
                .ok_or_else(|| ApiError::invalid("page_token", "is not a token this list issued"))? as i32,
        };
        let mut conn = self.pool.get().await?;
        let mut rows = chunk::list(&mut conn, found.id, after, limit + 1).await?;
        let next_page_token = page_token::next_token(&mut rows, limit, |c| page_token::encode_number(CHUNKS_TAG, i64::from(c.ordinal)));
        Ok(ListChunksResponse {
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
        })
    }
}

impl Documents {
    /// The document `id` if the caller may see it; NOT_FOUND otherwise.
    async fn visible(&self, principal: &Principal, id: &str) -> ApiResult<Document> {
        let id = parse_id("id", id)?;
        let mut conn = self.pool.get().await?;
        document::find(&mut conn, id)
            .await?
            .filter(|d| principal.reaches(d.owner_id))
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
        owner: principal.owner_scope(),
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

impl Documents {
    async fn stats(&self, principal: &Principal, owner_id: &str) -> ApiResult<pb::DocumentStats> {
        let owner = match (owner_id.trim(), principal.owner_scope()) {
            ("", scope) => scope,
            (id, None) => Some(id.parse().map_err(|_| ApiError::invalid("owner_id", "must be a UUID"))?),
            (_, Some(_)) => {
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
}

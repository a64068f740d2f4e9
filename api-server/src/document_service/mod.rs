//! `folio.v1.DocumentService`: uploads (streamed or inline), reads and
//! management of documents. A member reads their own documents and those
//! shared with them, an admin everyone's; only the owner or an admin changes
//! one (a reader it is shared with is refused, anyone else's answers
//! NOT_FOUND: `crate::sharing`).
//!
//! This file is the shim: each RPC reads the principal, reads the request
//! into domain terms (`request.rs`, which names the request's fields in what
//! it refuses), calls an inner function and converts its answer with
//! `convert.rs`. The inner functions take and return domain values (ids, the
//! model files' rows, `Page`s, `Metadata`, `Stats`, `Download`): `read.rs`
//! (one document, lists, events, chunks, statistics), `manage.rs` (delete,
//! cancel, retry), `upload.rs`, `download.rs` and `watches.rs`. The watch
//! streams are the one answer not converted here: they yield pre-encoded
//! `WatchResponse`s (see `crate::watch`).

use std::{pin::Pin, sync::Arc};

use bytes::Bytes;
use folio_core::{blobs::Blobs, cache::Cache, config::DocumentsConfig};
use folio_db::{self as db, documents::lifecycle::WaitNotice};
use folio_proto::v1::{
    self as pb, CancelDocumentRequest, CreateDocumentRequest, DeleteDocumentRequest, DeleteDocumentResponse, DownloadDocumentRequest,
    DownloadDocumentResponse, GetDocumentRequest, GetDocumentStatsRequest, ListChunksRequest, ListChunksResponse,
    ListDocumentEventsRequest, ListDocumentEventsResponse, ListDocumentsRequest, ListDocumentsResponse, RetryDocumentRequest,
    UploadDocumentRequest, UploadDocumentResponse, WatchDocumentRequest, WatchDocumentsRequest, document_service_server::DocumentService,
    upload_document_request::Part,
};
use futures_util::{Stream, StreamExt as _};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    auth,
    convert::{
        chunks_to_proto, document_to_proto, documents_to_proto, download_to_proto, events_to_proto, standing_to_proto, stats_to_proto,
    },
    error::ApiError,
    settings::Settings,
    watch::{Hub, stream::WatchStream},
};

mod download;
mod manage;
mod read;
mod request;
mod upload;
mod watches;

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
    /// When a waiting document says why (GetDocument's `waiting`).
    pub wait_notice: WaitNotice,
    /// Owners' backlogs as last counted, for the backlog bound.
    pub backlogs: Arc<crate::quota::Backlogs>,
}

/// An upload's bytes as they arrive; an `Err` says why the upload broke off.
type ByteStream<'a> = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send + 'a>>;

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
            })) => request::metadata(metadata)?,
            Some(Ok(_)) => return Err(ApiError::invalid("metadata", "the first message must carry the metadata").into()),
            Some(Err(status)) => return Err(status),
            None => return Err(ApiError::invalid("metadata", "the stream was empty").into()),
        };
        let bytes: ByteStream<'_> = Box::pin(stream.map(|message| match message {
            Ok(UploadDocumentRequest {
                part: Some(Part::Chunk(bytes)),
            }) => Ok(Bytes::from(bytes)),
            Ok(_) => Err("metadata: only the first message may carry metadata".to_owned()),
            Err(status) => Err(status.message().to_owned()),
        }));
        let stored = self.store(&principal, metadata, bytes).await?;
        Ok(Response::new(UploadDocumentResponse {
            document: Some(document_to_proto(&stored.document, stored.duplicate)),
        }))
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
        let metadata = request::metadata(metadata)?;
        let bytes: ByteStream<'_> = Box::pin(futures_util::stream::iter([Ok(Bytes::from(content))]));
        let stored = self.store(&principal, metadata, bytes).await?;
        Ok(Response::new(UploadDocumentResponse {
            document: Some(document_to_proto(&stored.document, stored.duplicate)),
        }))
    }

    type WatchDocumentStream = WatchStream;
    type WatchDocumentsStream = WatchStream;

    async fn watch_document(&self, request: Request<WatchDocumentRequest>) -> Result<Response<WatchStream>, Status> {
        let principal = auth::principal(&request)?;
        let (id, after_event_id, follow) = request::watch_one(request.into_inner())?;
        Ok(Response::new(self.watch_one(principal, id, after_event_id, follow).await?))
    }

    async fn watch_documents(&self, request: Request<WatchDocumentsRequest>) -> Result<Response<WatchStream>, Status> {
        let principal = auth::principal(&request)?;
        let (filter, after_event_id) = request::watch_all(&principal, request.into_inner())?;
        Ok(Response::new(self.watch_all(principal, filter, after_event_id).await?))
    }

    async fn get_document(&self, request: Request<GetDocumentRequest>) -> Result<Response<pb::Document>, Status> {
        let principal = auth::principal(&request)?;
        let waiting = self
            .visible_with_wait(&principal, request::id("id", &request.get_ref().id)?)
            .await?;
        Ok(Response::new(pb::Document {
            waiting: waiting.why.unwrap_or_default(),
            queue: waiting.standing.map(standing_to_proto),
            ..document_to_proto(&waiting.document, false)
        }))
    }

    async fn list_documents(&self, request: Request<ListDocumentsRequest>) -> Result<Response<ListDocumentsResponse>, Status> {
        let principal = auth::principal(&request)?;
        let query = request::list(&principal, request.into_inner())?;
        Ok(Response::new(documents_to_proto(self.list(query).await?)))
    }

    async fn delete_document(&self, request: Request<DeleteDocumentRequest>) -> Result<Response<DeleteDocumentResponse>, Status> {
        let principal = auth::principal(&request)?;
        self.delete(&principal, request::id("id", &request.get_ref().id)?).await?;
        Ok(Response::new(DeleteDocumentResponse {}))
    }

    async fn cancel_document(&self, request: Request<CancelDocumentRequest>) -> Result<Response<pb::Document>, Status> {
        let principal = auth::principal(&request)?;
        let cancelled = self.cancel(&principal, request::id("id", &request.get_ref().id)?).await?;
        Ok(Response::new(document_to_proto(&cancelled, false)))
    }

    async fn retry_document(&self, request: Request<RetryDocumentRequest>) -> Result<Response<pb::Document>, Status> {
        let principal = auth::principal(&request)?;
        let retried = self.retry(&principal, request::id("id", &request.get_ref().id)?).await?;
        Ok(Response::new(document_to_proto(&retried, false)))
    }

    async fn list_document_events(
        &self,
        request: Request<ListDocumentEventsRequest>,
    ) -> Result<Response<ListDocumentEventsResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        // The document first: one the caller cannot see is NOT_FOUND whatever
        // the rest of the request says.
        let found = self.visible(&principal, request::id("id", &request.document_id)?).await?;
        let (after_event_id, limit) = request::events(&request)?;
        let events = self.events(&found, after_event_id, limit).await?;
        Ok(Response::new(events_to_proto(&events, limit)))
    }

    async fn get_document_stats(&self, request: Request<GetDocumentStatsRequest>) -> Result<Response<pb::DocumentStats>, Status> {
        let principal = auth::principal(&request)?;
        let owner = request::stats_owner(&request.get_ref().owner_id);
        let stats = self.stats(&principal, owner).await?;
        Ok(Response::new(stats_to_proto(&stats.states, &stats.stages, stats.quota.as_ref())))
    }

    type DownloadDocumentStream = Pin<Box<dyn Stream<Item = Result<DownloadDocumentResponse, Status>> + Send>>;

    async fn download_document(&self, request: Request<DownloadDocumentRequest>) -> Result<Response<Self::DownloadDocumentStream>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let found = self.visible(&principal, request::id("id", &request.id)?).await?;
        let download = self.download(found, request::download_format(request.format)?).await?;
        Ok(Response::new(Box::pin(download_to_proto(download.content_type, download.parts))))
    }

    async fn list_chunks(&self, request: Request<ListChunksRequest>) -> Result<Response<ListChunksResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let found = self.visible(&principal, request::id("id", &request.document_id)?).await?;
        let (after_ordinal, limit) = request::chunks(&request)?;
        Ok(Response::new(chunks_to_proto(self.chunks(&found, after_ordinal, limit).await?)))
    }
}

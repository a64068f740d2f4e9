//! Reading documents: one the caller may see, a page of the documents they
//! reach, a document's events and chunks, and statistics.

use folio_db::documents::lifecycle;
use folio_db::models::{
    chunk::{self, Chunk},
    document::{self, Cursor, Document, DocumentFilter, Order, StageTiming, StateCount},
    document_event::{self, DocumentEvent},
};
use uuid::Uuid;

use super::{CHUNKS_TAG, DOCUMENTS_BY_NAME_TAG, DOCUMENTS_TAG, Documents};
use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    page_token::{self, Page},
    sharing,
};

/// Which documents a list shows: `filter` (which includes whose), in
/// `order`, after `after`, at most `limit`.
pub struct ListQuery {
    pub filter: DocumentFilter,
    pub order: Order,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// Documents by state and the stages' durations, of the documents counted;
/// and when they are one owner's, its use against its quotas.
pub struct Stats {
    pub states: Vec<StateCount>,
    pub stages: Vec<StageTiming>,
    pub quota: Option<crate::quota::Quota>,
}

/// A document, and what GetDocument says of its wait.
pub struct Waiting {
    pub document: Document,
    pub standing: Option<lifecycle::Standing>,
    pub why: Option<String>,
}

impl Documents {
    /// The document `id` if the caller may read it (its owner, an admin, a
    /// reader it is shared with); NOT_FOUND otherwise.
    pub(super) async fn visible(&self, principal: &Principal, id: Uuid) -> ApiResult<Document> {
        let mut conn = self.pool.get().await?;
        sharing::readable(&mut conn, principal, id).await
    }

    /// The document `id` if the caller may change it (its owner, an admin);
    /// PERMISSION_DENIED for a reader it is shared with, NOT_FOUND otherwise.
    pub(super) async fn changeable(&self, principal: &Principal, id: Uuid) -> ApiResult<Document> {
        let mut conn = self.pool.get().await?;
        sharing::changeable(&mut conn, principal, id).await
    }

    /// The document `id` if the caller may see it, with where its job stands
    /// in the fair schedule while it waits to be released, and why it waits
    /// if it has waited for a worker past the notice bound.
    pub(super) async fn visible_with_wait(&self, principal: &Principal, id: Uuid) -> ApiResult<Waiting> {
        let document = self.visible(principal, id).await?;
        let mut conn = self.pool.get().await?;
        let standing = lifecycle::standing(&mut conn, &document).await?;
        let why = lifecycle::why(&mut conn, &document, &self.wait_notice).await?;
        Ok(Waiting { document, standing, why })
    }

    /// A page of the documents `query` asks for; its token is the order's.
    pub(super) async fn list(&self, query: ListQuery) -> ApiResult<Page<Document>> {
        let ListQuery {
            filter,
            order,
            after,
            limit,
        } = query;
        let mut conn = self.pool.get().await?;
        let rows = document::list(&mut conn, &filter, order, after, limit + 1).await?;
        Ok(Page::cut(rows, limit, |d| match order {
            Order::FilenameAsc => page_token::encode_text_id(DOCUMENTS_BY_NAME_TAG, (&d.filename, d.id)),
            _ => page_token::encode_time_id(DOCUMENTS_TAG, (d.created_at, d.id)),
        }))
    }

    /// Up to `limit` of a document's events after `after_event_id`, oldest
    /// first.
    pub(super) async fn events(&self, found: &Document, after_event_id: i64, limit: i64) -> ApiResult<Vec<DocumentEvent>> {
        let mut conn = self.pool.get().await?;
        Ok(document_event::list(&mut conn, found.id, after_event_id, limit).await?)
    }

    /// A page of a document's chunks after ordinal `after_ordinal`, in order.
    pub(super) async fn chunks(&self, found: &Document, after_ordinal: i32, limit: i64) -> ApiResult<Page<Chunk>> {
        let mut conn = self.pool.get().await?;
        let rows = chunk::list(&mut conn, found.id, after_ordinal, limit + 1).await?;
        Ok(Page::cut(rows, limit, |c| {
            page_token::encode_number(CHUNKS_TAG, i64::from(c.ordinal))
        }))
    }

    /// Statistics of the documents the caller reaches, or of the documents of
    /// `owner`, which only an admin may name: anyone else naming an owner is
    /// refused before a malformed id would be reported.
    pub(super) async fn stats(&self, principal: &Principal, owner: Option<ApiResult<Uuid>>) -> ApiResult<Stats> {
        let owner = match (owner, principal.owner_scope()) {
            (None, scope) => scope,
            (Some(id), None) => Some(id?),
            (Some(_), Some(_)) => {
                return Err(ApiError::PermissionDenied(
                    "only an admin may ask for another owner's statistics".into(),
                ));
            }
        };
        let mut conn = self.pool.get().await?;
        let states = document::counts_by_state(&mut conn, owner).await?;
        let stages = document::stage_timings(&mut conn, owner).await?;
        let quota = match owner {
            Some(owner) => Some(self.quota(&mut conn, owner).await?),
            None => None,
        };
        Ok(Stats { states, stages, quota })
    }
}

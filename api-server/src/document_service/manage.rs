//! Changing documents: delete, cancel, retry. Only a document's owner or an
//! admin may (`sharing::changeable`): a reader it is shared with is refused.

use diesel_async::AsyncConnection as _;
use folio_db::{
    documents::{
        self,
        lifecycle::{self, LifecycleError},
    },
    models::document::Document,
};
use uuid::Uuid;

use super::{Documents, blob_keys};
use crate::{auth::Principal, error::ApiResult};

impl Documents {
    /// Deletes the document, then its blobs.
    pub(super) async fn delete(&self, principal: &Principal, id: Uuid) -> ApiResult<()> {
        let found = self.changeable(principal, id).await?;
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

    /// Cancels the document; the document as it is now.
    pub(super) async fn cancel(&self, principal: &Principal, id: Uuid) -> ApiResult<Document> {
        let found = self.changeable(principal, id).await?;
        let mut conn = self.pool.get().await?;
        let moved = conn.transaction(async |conn| lifecycle::cancel(conn, found.id).await).await?;
        if let Some(event) = &moved.event {
            documents::announce(&self.cache, event).await;
        }
        Ok(moved.document)
    }

    /// Queues a FAILED or CANCELLED document again; the document as it is now.
    pub(super) async fn retry(&self, principal: &Principal, id: Uuid) -> ApiResult<Document> {
        let found = self.changeable(principal, id).await?;
        let mut conn = self.pool.get().await?;
        let moved = conn
            .transaction(async |conn| lifecycle::retry_requested(conn, found.id).await)
            .await?;
        self.relay_wake.notify_one();
        if let Some(event) = &moved.event {
            documents::announce(&self.cache, event).await;
        }
        Ok(moved.document)
    }
}

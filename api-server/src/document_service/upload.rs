//! UploadDocument and CreateDocument: the metadata's rules, then the bytes,
//! sniffed, hashed and streamed to the blob store, then `lifecycle::store`.

use diesel::QueryDsl as _;
use diesel_async::AsyncConnection as _;
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use folio_db::{
    documents::{
        self,
        lifecycle::{self, Moved, NewDocument, Note},
    },
    models::{
        document::{self, Document},
        outbox::{self, Priority},
        user,
    },
    schema::users,
};
use folio_parse::detect::{self, SNIFF_BYTES};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{ByteStream, Documents};
use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    quota::{Backlog, DRAIN_WINDOW_SECS, Quota},
};

/// An upload's metadata, valid (`request::metadata` reads it): `filename`
/// display text, labels trimmed, sorted and unique.
#[derive(Debug)]
pub struct Metadata {
    pub filename: String,
    pub content_type: Option<String>,
    pub title: String,
    pub labels: Vec<String>,
    pub idempotency_key: Option<String>,
    /// Its job's place among the owner's.
    pub priority: Priority,
}

/// A stored upload: the new document, or the one these bytes (or this
/// idempotency key) already made.
pub struct Stored {
    pub document: Document,
    /// The same bytes were stored before (not a replay of the same key).
    pub duplicate: bool,
}

/// A filename as display text: the last path part, without control characters
/// or NUL, trimmed, at most 255 characters.
pub fn display_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    cleaned.trim().chars().take(255).collect()
}

impl Documents {
    /// `owner`'s quotas (its own, else the defaults) and what it keeps now.
    pub(super) async fn quota(&self, conn: &mut AsyncPgConnection, owner: Uuid) -> ApiResult<Quota> {
        let mut quota = self.limits(conn, owner).await?;
        quota.used = document::usage(conn, owner).await?;
        Ok(quota)
    }

    /// Refuses an upload while `owner` has as many documents waiting for the
    /// workers as the setting `max_waiting_per_owner` allows (see
    /// `quota::Backlogs` for when it counts).
    async fn admit_backlog(&self, owner: Uuid) -> ApiResult<()> {
        let limit = self.settings.max_waiting_per_owner();
        if limit == 0 || self.backlogs.admit_estimated(owner, limit) {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        let waiting = outbox::owner_waiting(&mut conn, owner, limit).await?;
        if waiting < limit {
            self.backlogs.counted(owner, waiting, true);
            return Ok(());
        }
        self.backlogs.counted(owner, waiting, false);
        let released = outbox::owner_released(&mut conn, owner, DRAIN_WINDOW_SECS).await?;
        Backlog { waiting, limit, released }.admit()
    }

    /// `owner`'s quotas, its use not yet counted.
    async fn limits(&self, conn: &mut AsyncPgConnection, owner: Uuid) -> ApiResult<Quota> {
        let (documents, bytes) = self.settings.default_quotas();
        let account = user::find(conn, owner).await?;
        Ok(Quota {
            documents: account.as_ref().and_then(|a| a.quota_documents).unwrap_or(documents),
            bytes: account.as_ref().and_then(|a| a.quota_bytes).unwrap_or(bytes),
            used: Default::default(),
        })
    }

    /// Stores an upload: sniffs the format, streams the bytes to the blob store
    /// while hashing them, then commits the row, its first event and the
    /// processing job together. Anything refused leaves nothing behind.
    pub(super) async fn store(&self, principal: &Principal, metadata: Metadata, mut bytes: ByteStream<'_>) -> ApiResult<Stored> {
        if let Some(key) = &metadata.idempotency_key {
            let mut conn = self.pool.get().await?;
            if let Some(existing) = document::find_existing(&mut conn, principal.user_id, &[], Some(key)).await?
                && existing.idempotency_key.as_deref() == Some(key)
            {
                return Ok(Stored {
                    document: existing,
                    duplicate: false,
                });
            }
        }

        // A full backlog refuses before any byte is read (uploads in flight
        // at once may each pass it: the bound is the point past which uploads
        // are refused, not an exact count).
        self.admit_backlog(principal.user_id).await?;

        // Sniff the format from the first bytes before writing anything.
        let mut head = Vec::new();
        let mut pending = Vec::new();
        while head.len() < SNIFF_BYTES {
            match bytes.next().await {
                Some(part) => {
                    let part = part.map_err(|why| ApiError::invalid("content", format!("upload interrupted: {why}")))?;
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
                let part = part.map_err(|why| ApiError::invalid("content", format!("upload interrupted: {why}")))?;
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

        let new = NewDocument {
            id,
            owner_id: principal.user_id,
            filename: metadata.filename,
            title: metadata.title,
            content_type: metadata
                .content_type
                .unwrap_or_else(|| detect::content_type(format, &head).to_owned()),
            format: format.as_str().to_owned(),
            labels: metadata.labels,
            size_bytes: size as i64,
            sha256: sha256.clone(),
            blob_key: blob_key.clone(),
            idempotency_key: metadata.idempotency_key.clone(),
            max_tries: self.max_tries as i32,
            priority: metadata.priority,
        };
        let note = Note {
            percent: 5,
            message: format!("stored {size} bytes as {}", format.as_str()),
            details: serde_json::json!({ "bytes": size, "format": format.as_str() }),
        };
        let mut conn = self.pool.get().await?;
        let owner = principal.user_id;
        let committed = conn
            .transaction(async |conn| -> ApiResult<_> {
                // Under a quota, uploads of one account take turns here, so two
                // at once cannot both fit; the same bytes again add nothing and
                // are not counted. Without one nothing is locked or counted.
                let mut quota = self.limits(conn, owner).await?;
                if quota.limited() {
                    users::table.find(owner).select(users::id).for_update().first::<Uuid>(conn).await?;
                    if document::find_existing(conn, owner, &new.sha256, new.idempotency_key.as_deref())
                        .await?
                        .is_none()
                    {
                        quota.used = document::usage(conn, owner).await?;
                        quota.admit(size as i64)?;
                    }
                }
                Ok(lifecycle::store(conn, new, note).await?)
            })
            .await;
        let committed = match committed {
            Ok(committed) => committed,
            Err(error) => {
                let _ = self.blobs.delete(&blob_key).await;
                return Err(error);
            }
        };
        match committed {
            Some(Moved { document: stored, event }) => {
                tracing::info!(document_id = %id, bytes = size, "document stored and queued");
                self.relay_wake.notify_one();
                if let Some(event) = &event {
                    documents::announce(&self.cache, event).await;
                }
                crate::audit::note(crate::audit::AuditNote {
                    target: format!("document:{id}"),
                    ..Default::default()
                });
                Ok(Stored {
                    document: stored,
                    duplicate: false,
                })
            }
            None => {
                // The same bytes (or key) exist: return that document instead.
                let _ = self.blobs.delete(&blob_key).await;
                let existing = document::find_existing(&mut conn, principal.user_id, &sha256, metadata.idempotency_key.as_deref())
                    .await?
                    .ok_or_else(|| ApiError::Unavailable("a concurrent upload is in progress; try again".into()))?;
                let replay = metadata.idempotency_key.is_some() && existing.idempotency_key == metadata.idempotency_key;
                Ok(Stored {
                    document: existing,
                    duplicate: !replay,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::display_filename;

    #[test]
    fn a_filename_is_display_text_its_last_path_part_without_control_characters() {
        assert_eq!(display_filename("../../etc/passwd"), "passwd");
        assert_eq!(display_filename("C:\\Users\\a\\report.pdf"), "report.pdf");
        assert_eq!(display_filename("  tab\tand\u{0}nul.txt  "), "tabandnul.txt");
        assert_eq!(display_filename(&"x".repeat(300)).chars().count(), 255);
    }
}

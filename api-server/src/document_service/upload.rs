//! UploadDocument and CreateDocument: the metadata's rules, then the bytes,
//! sniffed, hashed and streamed to the blob store, then `lifecycle::store`.

use diesel_async::AsyncConnection as _;
use folio_db::{
    documents::{
        self,
        lifecycle::{self, Moved, NewDocument, Note},
    },
    models::document::{self},
};
use folio_parse::detect::{self, SNIFF_BYTES};
use folio_proto::v1::{self as pb, DocumentMetadata};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{ByteStream, Documents};
use crate::{
    auth::Principal,
    convert::document_to_proto as to_proto,
    error::{ApiError, ApiResult},
};

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
    pub(super) async fn store(
        &self,
        principal: &Principal,
        metadata: DocumentMetadata,
        mut bytes: ByteStream<'_>,
    ) -> ApiResult<pb::Document> {
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

        let new = NewDocument {
            id,
            owner_id: principal.user_id,
            filename: metadata.filename,
            title: metadata.title,
            content_type: metadata.content_type.unwrap_or_else(|| detect::content_type(format).to_owned()),
            format: format.as_str().to_owned(),
            labels: metadata.labels,
            size_bytes: size as i64,
            sha256: sha256.clone(),
            blob_key: blob_key.clone(),
            idempotency_key: metadata.idempotency_key.clone(),
            max_tries: self.max_tries as i32,
        };
        let note = Note {
            percent: 5,
            message: format!("stored {size} bytes as {}", format.as_str()),
            details: serde_json::json!({ "bytes": size, "format": format.as_str() }),
        };
        let mut conn = self.pool.get().await?;
        let committed = conn.transaction(async |conn| lifecycle::store(conn, new, note).await).await?;
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
}

#[cfg(test)]
mod tests {
    use folio_proto::v1::DocumentMetadata;

    use super::{Metadata, display_filename};
    use crate::error::ApiError;

    #[test]
    fn a_filename_is_display_text_its_last_path_part_without_control_characters() {
        assert_eq!(display_filename("../../etc/passwd"), "passwd");
        assert_eq!(display_filename("C:\\Users\\a\\report.pdf"), "report.pdf");
        assert_eq!(display_filename("  tab\tand\u{0}nul.txt  "), "tabandnul.txt");
        assert_eq!(display_filename(&"x".repeat(300)).chars().count(), 255);
    }

    #[test]
    fn metadata_names_every_bad_field_and_cleans_labels() {
        let bad = DocumentMetadata {
            filename: "/".into(),
            labels: vec!["".into()],
            title: "t".repeat(501),
            ..Default::default()
        };
        let Err(ApiError::InvalidArgument(violations)) = Metadata::parse(bad) else {
            panic!("bad metadata accepted");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["metadata.filename", "metadata.labels", "metadata.title"]);

        let good = Metadata::parse(DocumentMetadata {
            filename: "notes.md".into(),
            labels: vec![" b ".into(), "a".into(), "b".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(good.labels, ["a", "b"], "trimmed, sorted, deduplicated");
        assert_eq!(good.idempotency_key, None);
    }
}

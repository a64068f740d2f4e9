//! The shim's reading of DocumentService requests into domain terms: every
//! refusal here names the request field it is about.

use folio_db::models::{
    document::{Cursor, DocumentFilter, Order},
    outbox::Priority,
};
use folio_proto::v1::{
    self as pb, DocumentMetadata, DownloadFormat, ListChunksRequest, ListDocumentEventsRequest, ListDocumentsRequest, WatchDocumentRequest,
    WatchDocumentsRequest,
};
use tonic_types::FieldViolation;
use uuid::Uuid;

use super::{
    CHUNKS_TAG, DOCUMENTS_BY_NAME_TAG, DOCUMENTS_TAG, download::Format, read::ListQuery, upload::Metadata, upload::display_filename,
};
use crate::{
    auth::{Principal, Whose},
    convert::{state_from_proto, to_time},
    error::{ApiError, ApiResult},
    page_token, sharing,
};

/// The id in request field `field`.
pub fn id(field: &str, id: &str) -> ApiResult<Uuid> {
    id.parse().map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// An upload's metadata, every invalid field named; labels trimmed, sorted
/// and without duplicates.
pub fn metadata(metadata: DocumentMetadata) -> ApiResult<Metadata> {
    let mut violations = Vec::new();
    let filename = display_filename(&metadata.filename);
    if filename.is_empty() {
        violations.push(FieldViolation::new(
            "metadata.filename",
            "is required (display text, at most 255 characters)",
        ));
    }
    if metadata.labels.len() > 32 {
        violations.push(FieldViolation::new("metadata.labels", "at most 32 labels"));
    }
    let labels: Vec<String> = metadata.labels.iter().map(|l| l.trim().to_owned()).collect();
    if labels.iter().any(|l| sharing::label(l).is_err()) {
        violations.push(FieldViolation::new(
            "metadata.labels",
            "each label is 1 to 64 characters without control characters",
        ));
    }
    if metadata.title.chars().count() > 500 {
        violations.push(FieldViolation::new("metadata.title", "at most 500 characters"));
    }
    if metadata.idempotency_key.len() > 200 {
        violations.push(FieldViolation::new("metadata.idempotency_key", "at most 200 characters"));
    }
    if metadata.content_type.len() > 200 {
        violations.push(FieldViolation::new("metadata.content_type", "at most 200 characters"));
    }
    let priority = match pb::Priority::try_from(metadata.priority) {
        Ok(pb::Priority::Unspecified | pb::Priority::Interactive) => Priority::Interactive,
        Ok(pb::Priority::Bulk) => Priority::Bulk,
        Err(_) => {
            violations.push(FieldViolation::new("metadata.priority", "must be INTERACTIVE or BULK"));
            Priority::Interactive
        }
    };
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
        priority,
    })
}

/// What ListDocuments asks for: the page size, the order, where the page
/// token left off (tokens are the order's), and the filters.
pub fn list(principal: &Principal, request: ListDocumentsRequest) -> ApiResult<ListQuery> {
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
            let (name, id) = page_token::decode_text_id(DOCUMENTS_BY_NAME_TAG, token).ok_or_else(foreign_token)?;
            Some(Cursor::Filename(name, id))
        }
        (token, _) => {
            let (at, id) = page_token::decode_time_id(DOCUMENTS_TAG, token).ok_or_else(foreign_token)?;
            Some(Cursor::Created(at, id))
        }
    };
    let filter = document_filter(
        principal,
        request.whose,
        request.state,
        &request.label,
        &request.filename_contains,
        request.created_after,
        request.created_before,
    )?;
    Ok(ListQuery {
        filter,
        order,
        after,
        limit,
    })
}

/// WatchDocument's document, cursor and whether to follow it past its end.
pub fn watch_one(request: WatchDocumentRequest) -> ApiResult<(Uuid, i64, bool)> {
    let document_id = id("document_id", &request.document_id)?;
    if request.after_event_id < 0 {
        return Err(ApiError::invalid("after_event_id", "must not be negative"));
    }
    Ok((document_id, request.after_event_id, request.follow))
}

/// WatchDocuments' filter and cursor (None: from now on).
pub fn watch_all(principal: &Principal, request: WatchDocumentsRequest) -> ApiResult<(DocumentFilter, Option<i64>)> {
    if request.after_event_id.is_some_and(|after| after < 0) {
        return Err(ApiError::invalid("after_event_id", "must not be negative"));
    }
    let filter = document_filter(
        principal,
        request.whose,
        request.state,
        &request.label,
        &request.filename_contains,
        request.created_after,
        request.created_before,
    )?;
    Ok((filter, request.after_event_id))
}

/// ListDocumentEvents' cursor and page size.
pub fn events(request: &ListDocumentEventsRequest) -> ApiResult<(i64, i64)> {
    if request.after_event_id < 0 {
        return Err(ApiError::invalid("after_event_id", "must not be negative"));
    }
    Ok((request.after_event_id, page_token::page_size(request.page_size, 100, 1000)?))
}

/// ListChunks' cursor (the last ordinal passed, -1 before the first) and
/// page size.
pub fn chunks(request: &ListChunksRequest) -> ApiResult<(i32, i64)> {
    let limit = page_token::page_size(request.page_size, 50, 500)?;
    let after = match request.page_token.as_str() {
        "" => -1,
        token => page_token::decode_number(CHUNKS_TAG, token).ok_or_else(foreign_token)? as i32,
    };
    Ok((after, limit))
}

/// The owner GetDocumentStats names, if any. A malformed id stays an error
/// here: it is reported only once the caller may name an owner at all.
pub fn stats_owner(owner_id: &str) -> Option<ApiResult<Uuid>> {
    match owner_id.trim() {
        "" => None,
        owner => Some(owner.parse().map_err(|_| ApiError::invalid("owner_id", "must be a UUID"))),
    }
}

/// DownloadDocument's format.
pub fn download_format(format: i32) -> ApiResult<Format> {
    match DownloadFormat::try_from(format) {
        Ok(DownloadFormat::Original) => Ok(Format::Original),
        Ok(DownloadFormat::Json) => Ok(Format::Json),
        Ok(DownloadFormat::Markdown) => Ok(Format::Markdown),
        Ok(DownloadFormat::Text) => Ok(Format::Text),
        Ok(DownloadFormat::Pdf) => Ok(Format::Pdf),
        Err(_) => Err(ApiError::invalid("format", "is not a known format")),
    }
}

fn foreign_token() -> ApiError {
    ApiError::invalid("page_token", "is not a token this list issued")
}

/// The filters ListDocuments and WatchDocuments share: whose documents
/// among those the caller reads, then the request's conditions.
fn document_filter(
    principal: &Principal,
    whose: i32,
    state: i32,
    label: &str,
    filename_contains: &str,
    created_after: Option<prost_types::Timestamp>,
    created_before: Option<prost_types::Timestamp>,
) -> ApiResult<DocumentFilter> {
    let whose = match pb::Whose::try_from(whose) {
        Ok(pb::Whose::Unspecified | pb::Whose::All) => Whose::All,
        Ok(pb::Whose::Mine) => Whose::Mine,
        Ok(pb::Whose::Shared) => Whose::SharedWithMe,
        Err(_) => return Err(ApiError::invalid("whose", "is not a known value")),
    };
    Ok(DocumentFilter {
        reach: principal.reach(whose),
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

#[cfg(test)]
mod tests {
    use folio_proto::v1::DocumentMetadata;

    use super::metadata;
    use crate::error::ApiError;

    #[test]
    fn metadata_names_every_bad_field_and_cleans_labels() {
        let bad = DocumentMetadata {
            filename: "/".into(),
            labels: vec!["".into()],
            title: "t".repeat(501),
            ..Default::default()
        };
        let Err(ApiError::InvalidArgument(violations)) = metadata(bad) else {
            panic!("bad metadata accepted");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["metadata.filename", "metadata.labels", "metadata.title"]);

        let good = metadata(DocumentMetadata {
            filename: "notes.md".into(),
            labels: vec![" b ".into(), "a".into(), "b".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(good.labels, ["a", "b"], "trimmed, sorted, deduplicated");
        assert_eq!(good.idempotency_key, None);
    }
}

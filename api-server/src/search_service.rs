//! `folio.v1.SearchService`, a shim over [`crate::search`]: each RPC reads the
//! request into domain terms (here, with the request's field names in what
//! it refuses), calls the search, and converts the answer (`convert.rs`).

use folio_proto::v1::{
    ReindexDocumentsRequest, ReindexDocumentsResponse, SearchMode, SearchRequest, SearchResponse, search_service_server::SearchService,
};
use tonic::{Request, Response, Status};
use tonic_types::FieldViolation;

use crate::{
    auth,
    convert::{reindexed_to_proto, search_outcome_to_proto},
    error::{ApiError, ApiResult},
    search::{self, Mode, Query, Search},
};

/// The longest query accepted, in characters.
const MAX_QUERY_CHARS: usize = 1000;

#[tonic::async_trait]
impl SearchService for Search {
    async fn search(&self, request: Request<SearchRequest>) -> Result<Response<SearchResponse>, Status> {
        let principal = auth::principal(&request)?;
        let query = query_from_proto(request.into_inner())?;
        let outcome = self.run(&principal, query).await.map_err(search::Error::into_api)?;
        Ok(Response::new(search_outcome_to_proto(outcome)))
    }

    async fn reindex_documents(&self, _request: Request<ReindexDocumentsRequest>) -> Result<Response<ReindexDocumentsResponse>, Status> {
        Ok(Response::new(reindexed_to_proto(self.reindex().await?)))
    }
}

/// The query a SearchRequest asks for; every invalid field is named.
fn query_from_proto(request: SearchRequest) -> ApiResult<Query> {
    let text = request.query.trim().to_owned();
    let mut violations = Vec::new();
    if text.is_empty() {
        violations.push(FieldViolation::new("query", "must not be empty"));
    } else if text.chars().count() > MAX_QUERY_CHARS {
        violations.push(FieldViolation::new(
            "query",
            format!("must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let top_k = match request.top_k {
        0 => 10,
        k @ 1..=100 => k as usize,
        _ => {
            violations.push(FieldViolation::new("top_k", "must be between 1 and 100"));
            10
        }
    };
    let mode = match SearchMode::try_from(request.mode) {
        Ok(SearchMode::Unspecified | SearchMode::Hybrid) => Mode::Hybrid,
        Ok(SearchMode::Vector) => Mode::Vector,
        Ok(SearchMode::Keyword) => Mode::Keyword,
        Err(_) => {
            violations.push(FieldViolation::new("mode", "must be HYBRID, VECTOR or KEYWORD"));
            Mode::Hybrid
        }
    };
    let (document_ids, labels) = search::read_filters(&request.document_ids, &request.labels, &mut violations);
    if !violations.is_empty() {
        return Err(ApiError::InvalidArgument(violations));
    }
    Ok(Query {
        text,
        top_k,
        mode,
        document_ids,
        labels,
        rerank: !request.no_rerank,
    })
}

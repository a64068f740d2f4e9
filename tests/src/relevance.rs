//! The real documents the suite and the benchmarks read, and the relevance
//! measure that the search test asserts and `scripts/bench models` reports for
//! each embedder.

use std::{collections::BTreeSet, path::PathBuf};

use folio_proto::v1::{
    ListChunksRequest, SearchRequest, document_service_client::DocumentServiceClient, search_service_client::SearchServiceClient,
};

use crate::clients::Authed;

/// Where `scripts/install-test-documents` put the real documents:
/// `FOLIO_TEST_DOCUMENTS`, else target/test-documents.
pub fn documents_dir() -> PathBuf {
    std::env::var("FOLIO_TEST_DOCUMENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-documents")))
}

/// How many of a document's section headings, each searched for on its own,
/// find a chunk of their section in the top 3.
#[derive(Debug)]
pub struct HitRate {
    pub found: usize,
    pub total: usize,
    pub missed: Vec<String>,
}

impl HitRate {
    pub fn rate(&self) -> f64 {
        self.found as f64 / self.total as f64
    }
}

/// Searches for every section heading of `document_id` (HYBRID; the
/// reranker unless `no_rerank`) and counts those whose section is in the top 3.
pub async fn heading_hit_rate(channel: Authed, document_id: &str, no_rerank: bool) -> HitRate {
    let mut documents = DocumentServiceClient::new(channel.clone());
    let mut searches = SearchServiceClient::new(channel);
    let mut headings = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = documents
            .list_chunks(ListChunksRequest {
                document_id: document_id.into(),
                page_size: 500,
                page_token,
            })
            .await
            .expect("list chunks")
            .into_inner();
        headings.extend(page.chunks.iter().filter_map(|c| c.section_path.last().cloned()));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut found = 0;
    let mut missed = Vec::new();
    for heading in &headings {
        let response = searches
            .search(SearchRequest {
                query: heading.clone(),
                top_k: 3,
                no_rerank,
                ..Default::default()
            })
            .await
            .expect("search")
            .into_inner();
        if response.results.iter().any(|r| r.section_path.last() == Some(heading)) {
            found += 1;
        } else {
            missed.push(heading.clone());
        }
    }
    HitRate {
        found,
        total: headings.len(),
        missed,
    }
}

//! The `cohere` reranker: the Cohere-style `POST <FOLIO_RERANK_URL>/v1/rerank`
//! with `{"model", "query", "documents", "top_n"}`, answered by
//! `{"results": [{"index", "relevance_score"}]}`. Cohere, Jina, Voyage and
//! several self-hosted servers speak it.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{RerankError, Reranker};
use crate::remote::{Remote, in_input_order};

/// The reranker of a Cohere-compatible server.
pub struct CohereReranker {
    remote: Remote,
    model: String,
    name: String,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    query: &'a str,
    documents: &'a [String],
    /// Every document, so every one gets a score.
    top_n: usize,
}

#[derive(Deserialize)]
struct Response {
    results: Vec<Scored>,
}

#[derive(Deserialize)]
struct Scored {
    index: usize,
    relevance_score: f32,
}

impl CohereReranker {
    /// A reranker posting to `remote` (the `/v1/rerank` URL) for `model`.
    pub fn new(remote: Remote, model: &str) -> Self {
        CohereReranker {
            remote,
            model: model.to_owned(),
            name: format!("cohere:{model}"),
        }
    }
}

impl Reranker for CohereReranker {
    fn name(&self) -> &str {
        &self.name
    }

    fn rerank<'a>(&'a self, query: &'a str, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<f32>, RerankError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let request = Request {
                model: &self.model,
                query,
                documents: texts,
                top_n: texts.len(),
            };
            let response: Response = self.remote.post_json(&request).await?;
            let scored = response.results.into_iter().map(|s| (s.index, s.relevance_score));
            Ok(in_input_order(self.remote.endpoint(), texts.len(), scored)?)
        })
    }
}

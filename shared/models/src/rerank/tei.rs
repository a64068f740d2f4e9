//! The `tei` reranker: Text Embeddings Inference serving a cross-encoder,
//! `POST <FOLIO_RERANK_URL>/rerank` with `{"query", "texts", "truncate"}`,
//! answered by `[{"index", "score"}]` sorted by score.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{RerankError, Reranker};
use crate::remote::{Remote, in_input_order};

/// The reranker of a TEI server.
pub struct TeiReranker {
    remote: Remote,
    name: String,
}

#[derive(Serialize)]
struct Request<'a> {
    query: &'a str,
    texts: &'a [String],
    /// Cut texts longer than the model takes instead of refusing them.
    truncate: bool,
}

#[derive(Deserialize)]
struct Scored {
    index: usize,
    score: f32,
}

impl TeiReranker {
    /// A reranker posting to `remote` (the `/rerank` URL).
    pub fn new(remote: Remote) -> Self {
        let name = format!("tei:{}", remote.endpoint());
        TeiReranker { remote, name }
    }
}

impl Reranker for TeiReranker {
    fn name(&self) -> &str {
        &self.name
    }

    fn rerank<'a>(&'a self, query: &'a str, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<f32>, RerankError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let request = Request {
                query,
                texts,
                truncate: true,
            };
            let scored: Vec<Scored> = self.remote.post_json(&request).await?;
            Ok(in_input_order(
                self.remote.endpoint(),
                texts.len(),
                scored.into_iter().map(|s| (s.index, s.score)),
            )?)
        })
    }
}

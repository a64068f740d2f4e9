//! The `openai` embedder: any server that speaks OpenAI's `POST /v1/embeddings`
//! (Text Embeddings Inference, vLLM, Ollama, llama.cpp, hosted services).
//! Batches larger than `FOLIO_EMBED_MAX_BATCH` are split into requests that run
//! side by side, within the process-wide limit of [`Remote`]; every returned
//! vector is checked against the configured dimension.

use futures_util::future::{BoxFuture, try_join_all};
use serde::{Deserialize, Serialize};

use super::{EmbedError, Embedder};
use crate::remote::{Remote, in_input_order};

/// The embedder of an OpenAI-compatible server.
pub struct OpenAiEmbedder {
    remote: Remote,
    /// The model the server is asked for.
    server_model: String,
    /// `openai:<server_model>`, recorded with the index.
    name: String,
    dimension: usize,
    max_batch: usize,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    /// An embedder asking `remote` (the `/v1/embeddings` URL) for `model`.
    pub fn new(remote: Remote, model: &str, dimension: usize, max_batch: usize) -> Self {
        OpenAiEmbedder {
            remote,
            server_model: model.to_owned(),
            name: format!("openai:{model}"),
            dimension,
            max_batch: max_batch.max(1),
        }
    }

    async fn embed_request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let request = Request {
            model: &self.server_model,
            input: texts,
            encoding_format: "float",
        };
        let response: Response = self.remote.post_json(&request).await?;
        if let Some(item) = response.data.iter().find(|item| item.embedding.len() != self.dimension) {
            return Err(EmbedError::Permanent(format!(
                "{} returned vectors of dimension {} for model {:?}, but FOLIO_EMBED_DIMENSION is {}",
                self.remote.endpoint(),
                item.embedding.len(),
                self.server_model,
                self.dimension
            )));
        }
        let items = response.data.into_iter().map(|item| (item.index, item.embedding));
        Ok(in_input_order(self.remote.endpoint(), texts.len(), items)?)
    }
}

impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let batches = try_join_all(texts.chunks(self.max_batch).map(|batch| self.embed_request(batch))).await?;
            Ok(batches.into_iter().flatten().collect())
        })
    }
}

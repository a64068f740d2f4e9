//! The `local` embedder: a sentence-transformers BERT model (all-MiniLM-L6-v2
//! and its kin) loaded from a directory and run on the CPU with candle.
//!
//! The directory holds `config.json` (the BERT shape), `model.safetensors` and
//! `tokenizer.json`; `sentence_bert_config.json`, when present, gives the
//! longest input (`max_seq_length`, 256 for MiniLM), else the model's position
//! limit does. Texts become word pieces cut to that length, go through the
//! encoder in batches padded to their longest member, and the output is mean
//! pooled over the attention mask and L2-normalised, as sentence-transformers
//! does for these models. The same tokenizer, uncut, counts a text's tokens
//! ([`Tokens`]) so the worker makes chunks the model reads whole. Inference
//! runs on a blocking thread so the async runtime keeps serving while a batch
//! takes its tens of milliseconds.

use std::{path::Path, sync::Arc};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use futures_util::future::BoxFuture;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

use super::{EmbedError, Embedder, Tokens};

/// A BERT sentence-embedding model in memory.
pub struct LocalEmbedder {
    model: Arc<Model>,
    counter: Counter,
    name: String,
    dimension: usize,
    max_batch: usize,
    permits: Semaphore,
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

/// The model's tokenizer without truncation or padding, for counting.
struct Counter {
    tokenizer: Tokenizer,
    window: usize,
}

/// The part of `sentence_bert_config.json` we read.
#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

impl LocalEmbedder {
    /// Loads the model in `dir` (blocking: reads ~90 MB for MiniLM). At most
    /// `concurrency` batches run at once, each of at most `max_batch` texts.
    pub fn load(dir: &Path, max_batch: usize, concurrency: usize) -> Result<Self, String> {
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|error| format!("{name}: {error}"));
        let config: Config = serde_json::from_slice(&read("config.json")?).map_err(|error| format!("config.json: {error}"))?;
        let max_length = match read("sentence_bert_config.json") {
            Ok(bytes) => {
                let sentence: SentenceBertConfig =
                    serde_json::from_slice(&bytes).map_err(|error| format!("sentence_bert_config.json: {error}"))?;
                sentence.max_seq_length.min(config.max_position_embeddings)
            }
            Err(_) => config.max_position_embeddings,
        };
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|error| format!("tokenizer.json: {error}"))?;
        let mut plain = tokenizer.clone();
        plain.with_truncation(None).map_err(|error| format!("tokenizer.json: {error}"))?;
        plain.with_padding(None);
        let specials = plain.encode("", true).map_err(|error| format!("tokenizer.json: {error}"))?.len();
        let counter = Counter {
            tokenizer: plain,
            window: max_length.saturating_sub(specials),
        };
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|error| format!("tokenizer.json: {error}"))?;
        // Keep the file's pad token, but pad a batch only to its longest text
        // (MiniLM's file pads everything to a fixed 128).
        let padding = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..padding
        }));
        let device = Device::Cpu;
        let weights = VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)
            .map_err(|error| format!("model.safetensors: {error}"))?;
        let bert = BertModel::load(weights, &config).map_err(|error| format!("model.safetensors: {error}"))?;
        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(LocalEmbedder {
            model: Arc::new(Model { bert, tokenizer, device }),
            counter,
            name: format!("local:{name}"),
            dimension: config.hidden_size,
            max_batch: max_batch.max(1),
            permits: Semaphore::new(concurrency.max(1)),
        })
    }
}

impl Model {
    /// Embeds one batch (blocking).
    fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|error| format!("tokenizing: {error}"))?;
        let (rows, columns) = (encodings.len(), encodings.first().map_or(0, |e| e.len()));
        let matrix = |field: fn(&tokenizers::Encoding) -> &[u32]| {
            let flat: Vec<u32> = encodings.iter().flat_map(|e| field(e).iter().copied()).collect();
            Tensor::from_vec(flat, (rows, columns), &self.device)
        };
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = matrix(tokenizers::Encoding::get_ids)?;
            let types = matrix(tokenizers::Encoding::get_type_ids)?;
            let mask = matrix(tokenizers::Encoding::get_attention_mask)?;
            let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
            // Mean over the real tokens only, then unit length.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let pooled = summed.broadcast_div(&mask.sum(1)?.clamp(1e-9, f32::MAX)?)?;
            let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
            pooled.broadcast_div(&norms)?.to_vec2()
        };
        run().map_err(|error| format!("inference: {error}"))
    }
}

impl Tokens for Counter {
    fn window(&self) -> usize {
        self.window
    }

    fn count(&self, text: &str) -> usize {
        // A text the tokenizer cannot read counts as one token per byte: too
        // many rather than too few, so a chunk stays inside the window.
        self.tokenizer.encode(text, false).map_or(text.len(), |encoding| encoding.len())
    }
}

impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn tokens(&self) -> Option<&dyn Tokens> {
        Some(&self.counter)
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in texts.chunks(self.max_batch) {
                let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
                let model = self.model.clone();
                let batch = batch.to_vec();
                let embedded = tokio::task::spawn_blocking(move || model.embed(batch))
                    .await
                    .map_err(|error| EmbedError::Transient(format!("{}: inference thread failed: {error}", self.name)))?
                    .map_err(|error| EmbedError::Permanent(format!("{}: {error}", self.name)))?;
                vectors.extend(embedded);
            }
            Ok(vectors)
        })
    }
}

//! The blob store for uploaded bytes and parse results: `object_store`, so the
//! same code writes to a local directory (`file://`, the default) or to object
//! storage (`s3://`, any S3-compatible service) on a fleet of many hosts.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutPayload,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    buffered::BufWriter,
    local::LocalFileSystem,
    path::Path,
    prefix::PrefixStore,
};
use tokio::io::AsyncWriteExt as _;

use crate::config::BlobOptions;

/// Blobs under keys folio makes (never from user input).
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs").field("store", &self.store.to_string()).finish()
    }
}

impl Blobs {
    /// Opens the store `url` names: `file://<directory>` (created if missing;
    /// relative paths are relative to the working directory) or
    /// `s3://<bucket>[/<prefix>]` with `options` (`aws_*` keys as
    /// `object_store` reads them: credentials, region, endpoint).
    pub fn open(url: &str, options: &BlobOptions) -> Result<Blobs, String> {
        if let Some(rest) = url.strip_prefix("s3://") {
            crate::startup::install_tls_provider();
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
            for (name, value) in &options.0 {
                let key: AmazonS3ConfigKey = name.parse().map_err(|e| format!("{name}: {e}"))?;
                builder = builder.with_config(key, value);
            }
            let store = builder.build().map_err(|e| format!("cannot open {url}: {e}"))?;
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(store)
            } else {
                Arc::new(PrefixStore::new(store, prefix))
            };
            return Ok(Blobs { store });
        }
        let Some(path) = url.strip_prefix("file://") else {
            return Err(format!(
                "{url:?} is not supported (use file://<directory> or s3://<bucket>[/<prefix>])"
            ));
        };
        std::fs::create_dir_all(path).map_err(|e| format!("cannot create {path}: {e}"))?;
        let store = LocalFileSystem::new_with_prefix(path).map_err(|e| format!("cannot open {path}: {e}"))?;
        Ok(Blobs { store: Arc::new(store) })
    }

    /// Starts a streaming write of `key`; finish it with [`BlobWriter::finish`]
    /// or drop it with [`BlobWriter::abort`].
    pub fn writer(&self, key: &str) -> BlobWriter {
        BlobWriter {
            inner: BufWriter::new(self.store.clone(), Path::from(key)),
        }
    }

    /// Writes `bytes` to `key` in one go.
    pub async fn put(&self, key: &str, bytes: Bytes) -> object_store::Result<()> {
        self.store.put(&Path::from(key), PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Reads the whole blob.
    pub async fn get(&self, key: &str) -> object_store::Result<Bytes> {
        self.store.get(&Path::from(key)).await?.bytes().await
    }

    /// Streams the blob in the store's own parts.
    pub async fn stream(&self, key: &str) -> object_store::Result<futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        Ok(self.store.get(&Path::from(key)).await?.into_stream())
    }

    /// Deletes a blob; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> object_store::Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }
}

/// A blob being written in parts.
pub struct BlobWriter {
    inner: BufWriter,
}

impl BlobWriter {
    /// Appends bytes.
    pub async fn write(&mut self, bytes: Bytes) -> object_store::Result<()> {
        self.inner.put(bytes).await
    }

    /// Completes the blob.
    pub async fn finish(mut self) -> std::io::Result<()> {
        self.inner.shutdown().await
    }

    /// Discards what was written.
    pub async fn abort(mut self) {
        let _ = self.inner.abort().await;
    }
}

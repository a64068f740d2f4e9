//! Redis, reached through a [`ConnectionManager`] that reconnects by itself, and
//! the prefix that keeps one deployment's (or one test's) keys and channels
//! apart from another's on a shared server.

use std::time::Duration;

use redis::{AsyncCommands as _, aio::ConnectionManager};

/// A Redis connection with folio's key prefix.
#[derive(Clone)]
pub struct Cache {
    manager: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Cache {
    /// Connects once; the manager reconnects on its own afterwards.
    pub async fn connect(url: &str, prefix: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_with_config(client, config).await?;
        Ok(Cache {
            manager,
            prefix: prefix.to_owned(),
        })
    }

    /// The full name of a key or channel: the prefix, then `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// A handle for running commands and pipelines (cheap: the manager is
    /// shared).
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// A round trip to Redis.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut connection = self.manager.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }

    /// Sets `name` (prefixed) to `value`, expiring after `ttl`.
    pub async fn set_with_ttl(&self, name: &str, value: &str, ttl: Duration) -> redis::RedisResult<()> {
        let mut connection = self.manager.clone();
        connection.set_ex(self.key(name), value, ttl.as_secs().max(1)).await
    }
}

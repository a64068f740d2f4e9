//! The outbox relay: publishes committed outbox rows to RabbitMQ and marks them
//! sent only after the broker confirmed each one.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number of api-servers
//! can relay at once without publishing a row twice in the normal case. A row
//! can still be published twice (the broker confirmed, then the mark-sent commit
//! failed); workers deduplicate by job id, so its effect happens once.
//!
//! While RabbitMQ is unreachable the relay reconnects with backoff and rows wait
//! in the outbox; the RPCs that wrote them have already succeeded.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use diesel_async::AsyncConnection as _;
use folio_core::queue::{self, Topology};
use folio_db::{self as db, models::outbox};
use futures_util::future::join_all;
use lapin::{Channel, options::ConfirmSelectOptions};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerLink;

/// Rows published per transaction.
const BATCH: i64 = 256;

/// The relay's settings and handles.
pub struct Relay {
    pub pool: db::Pool,
    pub broker: Arc<BrokerLink>,
    pub amqp_url: String,
    pub topology: Topology,
    /// Woken by RPCs that just committed an outbox row.
    pub wake: Arc<Notify>,
    /// How often to look for rows other processes wrote.
    pub poll: Duration,
}

impl Relay {
    /// Relays until `cancel` fires. Never returns an error: every failure is
    /// logged, recorded on the rows and retried.
    pub async fn run(self, cancel: CancellationToken) {
        // At zero from the start, so an alert on it has a series to read.
        metrics::counter!(folio_core::metrics::RABBITMQ_RECONNECTS).increment(0);
        let mut backoff = Duration::from_millis(100);
        let mut channel: Option<Channel> = None;
        while !cancel.is_cancelled() {
            let open = match channel.take() {
                Some(open) if open.status().connected() => Ok(open),
                _ => self.open_channel().await,
            };
            let open = match open {
                Ok(open) => open,
                Err(error) => {
                    let error = format!("{error:#}");
                    tracing::warn!(%error, "outbox relay cannot reach RabbitMQ, retrying in {backoff:?}");
                    self.broker.lost(error);
                    sleep_or_cancel(backoff, &cancel).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            match self.publish_batch(&open).await {
                Ok(published) => {
                    backoff = Duration::from_millis(100);
                    channel = Some(open);
                    if published < BATCH as usize {
                        tokio::select! {
                            () = cancel.cancelled() => {}
                            () = self.wake.notified() => {}
                            () = tokio::time::sleep(self.poll) => {}
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "outbox relay batch failed, retrying in {backoff:?}");
                    sleep_or_cancel(backoff, &cancel).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if let Some(connection) = self.broker.current() {
            let _ = connection.close(200, "api-server shutting down".into()).await;
        }
    }

    /// Connects (reusing a live connection), opens a confirm-mode channel and
    /// declares the topology, so that mandatory publishes are routable even
    /// before any worker has started.
    async fn open_channel(&self) -> anyhow::Result<Channel> {
        let connection = match self.broker.current() {
            Some(connection) => connection,
            None => {
                let connection = Arc::new(BrokerLink::connect(&self.amqp_url, "folio-api relay").await.context("connect")?);
                self.broker.set(connection.clone());
                // The first connection is made at start, so this is a reconnect.
                metrics::counter!(folio_core::metrics::RABBITMQ_RECONNECTS).increment(1);
                tracing::info!("outbox relay connected to RabbitMQ");
                connection
            }
        };
        let channel = connection.create_channel().await.context("open channel")?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enable confirms")?;
        self.topology.declare(&channel).await.context("declare topology")?;
        Ok(channel)
    }

    /// Publishes up to [`BATCH`] unsent rows in one transaction. Confirmed rows
    /// are marked sent; the others record the failure and stay unsent. Returns
    /// the number of rows claimed, or an error if any publish failed.
    async fn publish_batch(&self, channel: &Channel) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().await?;
        let exchange = self.topology.jobs_exchange();
        let (claimed, failure) = conn
            .transaction(async |conn| -> anyhow::Result<(usize, Option<String>)> {
                let rows = outbox::claim_unsent(conn, BATCH).await?;
                if rows.is_empty() {
                    return Ok((0, None));
                }
                let publishes = rows.iter().map(|row| async {
                    let started = std::time::Instant::now();
                    let confirm = queue::publish(
                        channel,
                        &exchange,
                        queue::PROCESS_KEY,
                        row.job_id,
                        &row.payload,
                        row.try_number.max(1) as u32,
                    )
                    .await?;
                    queue::confirmed(confirm).await?;
                    metrics::histogram!(folio_core::metrics::PUBLISH_CONFIRM).record(started.elapsed().as_secs_f64());
                    anyhow::Ok(())
                });
                let outcomes = join_all(publishes).await;
                let mut sent = Vec::with_capacity(rows.len());
                let mut failed = Vec::new();
                let mut failure = None;
                for (row, outcome) in rows.iter().zip(outcomes) {
                    match outcome {
                        Ok(()) => sent.push(row.id),
                        Err(error) => {
                            failed.push(row.id);
                            failure.get_or_insert_with(|| format!("{error:#}"));
                        }
                    }
                }
                outbox::mark_sent(conn, &sent).await?;
                if let Some(error) = &failure {
                    outbox::record_failure(conn, &failed, error).await?;
                }
                tracing::debug!(sent = sent.len(), failed = failed.len(), "outbox batch relayed");
                Ok((rows.len(), failure))
            })
            .await?;
        match failure {
            Some(error) => Err(anyhow::anyhow!("publish failed: {error}")),
            None => Ok(claimed),
        }
    }
}

async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) {
    tokio::select! {
        () = cancel.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

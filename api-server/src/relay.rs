//! The outbox relay: publishes committed outbox rows to RabbitMQ and marks them
//! sent only after the broker confirmed each one, and the fair schedule that
//! decides when an owner's job is released.
//!
//! folio's own jobs (pings) go at once. An owner's jobs (processing and
//! re-embedding documents) wait in the outbox and are released only while the
//! process queue holds fewer than `FOLIO_SCHEDULER_AHEAD` ready jobs per
//! consumer; the next ones are chosen by start-time fair queuing over owners
//! (`folio_core::fair`: owners with work waiting take turns, by weight;
//! interactive before bulk within an owner). So the broker's queue stays
//! short and order is decided in Postgres: a user who uploads twenty thousand
//! documents fills the queue only a few jobs deep, and another user's upload
//! is released at the next turn, about one job's time after a worker frees.
//!
//! One relay at a time releases owned jobs (an advisory lock for its
//! transaction), so the queue's depth it read is still true when it
//! publishes; unowned rows are claimed with `FOR UPDATE SKIP LOCKED`, so any
//! number of api-servers relay at once without publishing a row twice in the
//! normal case. A row can still be published twice (the broker confirmed, then
//! the mark-sent commit failed); workers deduplicate by job id, so its effect
//! happens once.
//!
//! While RabbitMQ is unreachable the relay reconnects with backoff and rows wait
//! in the outbox; the RPCs that wrote them have already succeeded.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use diesel_async::AsyncConnection as _;
use folio_core::{
    fair,
    queue::{self, Topology},
};
use folio_db::{
    self as db,
    models::{
        fair_share,
        outbox::{self, OutboxRow},
    },
};
use futures_util::future::join_all;
use lapin::{
    Channel,
    options::{ConfirmSelectOptions, QueueDeclareOptions},
};
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
    /// Owned jobs kept ready in the process queue per consumer.
    pub ahead: u32,
    /// How often to read the queue while owned jobs wait for room in it.
    pub hold_poll: Duration,
}

/// What one round of the relay did.
#[derive(Debug, Default)]
struct Round {
    /// A full batch went: go on at once.
    more: bool,
    /// Owned jobs wait for room in the queue: look again after `hold_poll`.
    held: bool,
}

/// How the release of owned rows went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// None wait.
    Idle,
    /// Another relay holds the release lock: it releases them.
    Elsewhere,
    /// This many went, and more wait for room.
    Held(usize),
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
            match self.round(&open).await {
                Ok(round) => {
                    backoff = Duration::from_millis(100);
                    channel = Some(open);
                    if !round.more {
                        let pause = if round.held { self.hold_poll } else { self.poll };
                        tokio::select! {
                            () = cancel.cancelled() => {}
                            () = self.wake.notified() => {}
                            () = tokio::time::sleep(pause) => {}
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

    /// Sends folio's own rows, then releases owned ones in fair order.
    async fn round(&self, channel: &Channel) -> anyhow::Result<Round> {
        let unowned = self.publish_unowned(channel).await?;
        let release = self.release_owned(channel).await?;
        Ok(Round {
            more: unowned == BATCH as usize || release == Release::Held(BATCH as usize),
            held: matches!(release, Release::Held(_)),
        })
    }

    /// Publishes up to [`BATCH`] of folio's own unsent rows in one
    /// transaction. Returns the number of rows claimed, or an error if any
    /// publish failed.
    async fn publish_unowned(&self, channel: &Channel) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().await?;
        let (claimed, failure) = conn
            .transaction(async |conn| -> anyhow::Result<(usize, Option<String>)> {
                let rows = outbox::claim_unowned(conn, BATCH).await?;
                let failure = self.publish(conn, channel, &rows).await?;
                Ok((rows.len(), failure))
            })
            .await?;
        match failure {
            Some(error) => Err(anyhow::anyhow!("publish failed: {error}")),
            None => Ok(claimed),
        }
    }

    /// Releases owned rows in fair order while the process queue has room,
    /// holding the release lock for the transaction.
    async fn release_owned(&self, channel: &Channel) -> anyhow::Result<Release> {
        let mut conn = self.pool.get().await?;
        if !outbox::owned_waiting(&mut conn).await? {
            return Ok(Release::Idle);
        }
        // While the queue is full (most rounds of an import) the broker alone
        // is asked; the transaction and its lock are for releasing.
        if self.room(channel).await? <= 0 {
            return Ok(Release::Held(0));
        }
        let (release, failure) = conn
            .transaction(async |conn| -> anyhow::Result<(Release, Option<String>)> {
                if !fair_share::try_lock(conn).await? {
                    return Ok((Release::Elsewhere, None));
                }
                let room = self.room(channel).await?.min(BATCH);
                if room <= 0 {
                    return Ok((Release::Held(0), None));
                }
                let rows = self.next_in_turn(conn, room).await?;
                let failure = self.publish(conn, channel, &rows).await?;
                Ok((Release::Held(rows.len()), failure))
            })
            .await?;
        match failure {
            Some(error) => Err(anyhow::anyhow!("publish failed: {error}")),
            None => Ok(release),
        }
    }

    /// How many more jobs the process queue takes: `ahead` ready jobs per
    /// consumer (at least one consumer's worth, so uploads made while no
    /// worker runs start as soon as one does), less those ready now.
    async fn room(&self, channel: &Channel) -> anyhow::Result<i64> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declare = channel.queue_declare(self.topology.process_queue().as_str().into(), passive, Default::default());
        // A broker that stalls with the connection open never answers; give
        // up as a publish does, and try again.
        let queue = tokio::time::timeout(queue::CONFIRM_TIMEOUT, declare)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {:?}", queue::CONFIRM_TIMEOUT))
            .and_then(|declared| declared.map_err(anyhow::Error::from))
            .context("read the process queue's depth")?;
        let window = i64::from(queue.consumer_count().max(1)) * i64::from(self.ahead);
        Ok(window - i64::from(queue.message_count()))
    }

    /// The next `room` owned rows in fair order, locked, with the schedule
    /// advanced past them.
    async fn next_in_turn(&self, conn: &mut diesel_async::AsyncPgConnection, room: i64) -> anyhow::Result<Vec<OutboxRow>> {
        let candidates = outbox::owned_candidates(conn, room).await?;
        let mut owners: Vec<fair::Owner<OutboxRow>> = Vec::new();
        for row in candidates {
            let owner_id = row.owner_id.context("an owned row has an owner")?;
            match owners.last_mut() {
                Some(owner) if owner.id == owner_id => owner.waiting.push_back(row),
                _ => owners.push(fair::Owner {
                    id: owner_id,
                    finish: 0.0,
                    turn: 0,
                    weight: 1,
                    waiting: [row].into(),
                }),
            }
        }
        let ids: Vec<_> = owners.iter().map(|owner| owner.id).collect();
        for place in fair_share::places(conn, &ids).await? {
            if let Some(owner) = owners.iter_mut().find(|owner| owner.id == place.owner_id) {
                owner.finish = place.finish;
                owner.turn = place.turn;
                owner.weight = u32::try_from(place.weight).unwrap_or(1).max(1);
            }
        }
        let mut clock = fair_share::clock(conn).await?;
        let before = clock.turn;
        let picked = fair::take(&mut clock, &mut owners, usize::try_from(room).unwrap_or(0), |row| row.id);
        let locked = outbox::lock_unsent(conn, &picked.iter().map(|row| row.id).collect::<Vec<_>>()).await?;
        let served: Vec<_> = owners
            .iter()
            .filter(|owner| owner.turn > before)
            .map(|owner| fair_share::Place {
                owner_id: owner.id,
                finish: owner.finish,
                turn: owner.turn,
                weight: owner.weight as i32,
            })
            .collect();
        fair_share::save(conn, clock, &served).await?;
        Ok(picked.into_iter().filter(|row| locked.contains(&row.id)).collect())
    }

    /// Publishes `rows` in their order and waits for the broker's confirms;
    /// confirmed rows are marked sent, the others record the failure and stay
    /// unsent. Returns the first failure, if any.
    async fn publish(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        channel: &Channel,
        rows: &[OutboxRow],
    ) -> anyhow::Result<Option<String>> {
        if rows.is_empty() {
            return Ok(None);
        }
        let exchange = self.topology.jobs_exchange();
        let mut confirms = Vec::with_capacity(rows.len());
        for row in rows {
            let started = std::time::Instant::now();
            let published = queue::publish(
                channel,
                &exchange,
                queue::PROCESS_KEY,
                row.job_id,
                &row.payload,
                row.try_number.max(1) as u32,
            )
            .await;
            confirms.push(async move {
                queue::confirmed(published?).await?;
                metrics::histogram!(folio_core::metrics::PUBLISH_CONFIRM).record(started.elapsed().as_secs_f64());
                anyhow::Ok(())
            });
        }
        let outcomes = join_all(confirms).await;
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
        Ok(failure)
    }
}

async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) {
    tokio::select! {
        () = cancel.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

//! The consumer: one RabbitMQ connection at a time, reopened with backoff when it
//! drops; deliveries run as tasks, at most `FOLIO_WORKER_CONCURRENCY` at once
//! (the channel's prefetch).
//!
//! A delivery is acked only after its job's transaction committed. A job that
//! fails transiently is republished (confirmed) to the retry queue for its
//! attempt and then acked; one that fails permanently, or runs out of attempts,
//! is rejected to the dead-letter queue. Acks go through the delivery's own
//! `Acker`, bound to the channel it came on: after that channel died the ack is a
//! no-op and the broker redelivers the job, which then deduplicates.
//!
//! At most `FOLIO_WORKER_CONCURRENCY` jobs run at once also across a
//! reconnect: jobs of a channel that died go on (their documents are held by
//! their leases and locks; the redelivered copies would wait for the locks),
//! and the new channel's deliveries wait for permits.
//!
//! A ProcessDocument job still running after half the broker's consumer
//! timeout (`FOLIO_CONSUMER_TIMEOUT_SECS`) is acked early, "handed over to
//! its lease": from then on the document's lease, renewed by this worker's
//! heartbeat, is what brings the document back if the worker dies, and the
//! broker never closes the channel under the job. Its outcome is recorded as
//! usual; only the ack (or reject) is already done, and a retry whose publish
//! fails is published again until it is confirmed.
//!
//! Every worker also reads the dead-letter queue, so that no document waits on
//! a job that will never run again: a job the broker dead-lettered (past the
//! delivery limit, because each worker that took it died, or rejected by a
//! worker that could not record why) ends its document FAILED through the
//! lifecycle, which changes nothing where the failure was recorded already or
//! the document moved on. The dead letter is acked once that is settled.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use folio_core::{
    queue::{self, Topology},
    trace::{self, TraceContext},
};
use folio_db::models::dead_letter;
use folio_proto::queue::v1::Job;
use futures_util::StreamExt as _;
use lapin::{
    Acker, Channel, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
        ConfirmSelectOptions,
    },
    types::FieldTable,
};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    activity::Activity,
    jobs::{self, JobContext, JobError, Outcome},
};

/// How much the consumer takes on, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Jobs at once (`FOLIO_WORKER_CONCURRENCY`), also the channel's prefetch.
    pub prefetch: u16,
    /// How long in-flight jobs may take after a stop.
    pub grace: Duration,
    /// The broker's consumer timeout (`FOLIO_CONSUMER_TIMEOUT_SECS`).
    pub consumer_timeout: Duration,
}

/// Everything a delivery task needs.
pub struct Consumer {
    pub amqp_url: String,
    pub topology: Topology,
    pub prefetch: u16,
    pub grace: Duration,
    pub context: JobContext,
    pub activity: Arc<Activity>,
    in_flight: Mutex<HashMap<u64, Acker>>,
    /// Whether a session connected before (the next one is a reconnect).
    connected_before: AtomicBool,
    next_key: AtomicU64,
    /// One per job that may run at once (`prefetch` of them).
    permits: Arc<Semaphore>,
    /// How long a ProcessDocument job runs before it is handed over to its
    /// lease (half the broker's consumer timeout).
    hand_over_after: Duration,
}

impl Consumer {
    pub fn new(amqp_url: String, topology: Topology, limits: Limits, context: JobContext, activity: Arc<Activity>) -> Self {
        Consumer {
            amqp_url,
            topology,
            prefetch: limits.prefetch,
            grace: limits.grace,
            context,
            activity,
            in_flight: Mutex::default(),
            next_key: AtomicU64::new(0),
            connected_before: AtomicBool::new(false),
            permits: Arc::new(Semaphore::new(limits.prefetch as usize)),
            hand_over_after: limits.consumer_timeout / 2,
        }
    }

    /// Consumes until `cancel` fires, reconnecting whenever the connection
    /// drops. On cancel it stops consuming, gives in-flight jobs the grace
    /// period to finish and nacks (requeues) those that did not.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        // At zero from the start, so alerts on them have series to read.
        metrics::counter!(folio_core::metrics::RABBITMQ_RECONNECTS).increment(0);
        metrics::gauge!(folio_core::metrics::JOBS_IN_FLIGHT).increment(0.0);
        let mut tasks = JoinSet::new();
        let mut backoff = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            match self.session(&cancel, &mut tasks).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "RabbitMQ session ended, reconnecting in {backoff:?}");
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.drain(&mut tasks).await;
    }

    /// One connection's life: declare, consume, dispatch. Returns Ok on cancel,
    /// Err when the connection or channel failed.
    async fn session(self: &Arc<Self>, cancel: &CancellationToken, tasks: &mut JoinSet<()>) -> anyhow::Result<()> {
        let properties = ConnectionProperties::default().with_connection_name("folio-worker".into());
        let connection = Connection::connect(&self.amqp_url, properties).await.context("connect")?;
        if self.connected_before.swap(true, Ordering::Relaxed) {
            metrics::counter!(folio_core::metrics::RABBITMQ_RECONNECTS).increment(1);
        }
        let consuming = connection.create_channel().await.context("open channel")?;
        self.topology.declare(&consuming).await.context("declare topology")?;
        consuming
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .context("set prefetch")?;
        let publishing = connection.create_channel().await.context("open publish channel")?;
        publishing
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enable confirms")?;
        let mut deliveries = consuming
            .basic_consume(
                self.topology.process_queue().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("consume")?;
        let tag = deliveries.tag();
        let dead = connection.create_channel().await.context("open dead-letter channel")?;
        dead.basic_qos(DEAD_LETTER_PREFETCH, BasicQosOptions::default())
            .await
            .context("set dead-letter prefetch")?;
        let mut dead_letters = dead
            .basic_consume(
                self.topology.dead_letter().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("consume dead letters")?;
        let dead_tag = dead_letters.tag();
        tracing::info!(queue = %self.topology.process_queue(), prefetch = self.prefetch, "consuming");

        loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    tracing::info!("stopping consumption");
                    let _ = consuming.basic_cancel(tag, BasicCancelOptions::default()).await;
                    let _ = dead.basic_cancel(dead_tag, BasicCancelOptions::default()).await;
                    self.drain(tasks).await;
                    let _ = connection.close(200, "worker shutting down".into()).await;
                    return Ok(());
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                delivery = deliveries.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
                        self.in_flight.lock().expect("in-flight lock").insert(key, delivery.acker.clone());
                        let this = self.clone();
                        let publishing = publishing.clone();
                        tasks.spawn(async move {
                            let _permit = this.permits.clone().acquire_owned().await.expect("the permits are never closed");
                            let _running = folio_core::metrics::Held::new(folio_core::metrics::JOBS_IN_FLIGHT);
                            this.handle(&publishing, delivery).await;
                            this.in_flight.lock().expect("in-flight lock").remove(&key);
                        });
                    }
                    Some(Err(error)) => return Err(error).context("delivery stream"),
                    None => anyhow::bail!("the broker cancelled the consumer"),
                },
                dead_letter = dead_letters.next() => match dead_letter {
                    Some(Ok(delivery)) => {
                        let this = self.clone();
                        tasks.spawn(async move { this.settle_dead_letter(delivery).await });
                    }
                    Some(Err(error)) => return Err(error).context("dead-letter stream"),
                    None => anyhow::bail!("the broker cancelled the dead-letter consumer"),
                },
            }
        }
    }

    /// Waits up to the grace period for in-flight jobs; requeues the rest.
    async fn drain(&self, tasks: &mut JoinSet<()>) {
        if tasks.is_empty() {
            return;
        }
        tracing::info!(in_flight = tasks.len(), grace = ?self.grace, "waiting for in-flight jobs");
        let finished = tokio::time::timeout(self.grace, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            tasks.abort_all();
            let ackers: Vec<Acker> = self.in_flight.lock().expect("in-flight lock").drain().map(|(_, a)| a).collect();
            tracing::warn!(requeued = ackers.len(), "grace period over, requeueing unfinished jobs");
            for acker in ackers {
                let _ = acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await;
            }
            while tasks.join_next().await.is_some() {}
        }
    }

    async fn handle(&self, publishing: &Channel, delivery: Delivery) {
        let attempt = queue::delivery_attempt(&delivery.properties);
        let job = match queue::decode(&delivery.data) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(%error, "undecodable job, dead-lettering it");
                metrics::counter!(folio_core::metrics::JOBS, "kind" => "undecodable", "outcome" => "failed").increment(1);
                settle(&delivery.acker, Settle::Reject).await;
                return;
            }
        };
        // The job goes on with the trace of the call that caused it.
        let context = queue::trace_of(&job).map_or_else(TraceContext::root, |caller| caller.child());
        let span = tracing::info_span!("job", trace_id = %context.trace_id_hex(), job_id = %job.job_id, attempt);
        folio_core::telemetry::continue_trace(&span, &context);
        trace::scope(context, self.run_job(publishing, &delivery, &job, attempt).instrument(span)).await;
    }

    /// Runs a decoded job and settles its delivery, in its trace and span.
    async fn run_job(&self, publishing: &Channel, delivery: &Delivery, job: &Job, attempt: u32) {
        let _activity = self.activity.start(job.job_id.clone());
        let started = tokio::time::Instant::now();
        let tries = jobs::Delivery {
            number: attempt,
            max: self.topology.max_attempts(),
            token: uuid::Uuid::new_v4(),
            retry_delay: self.topology.retry_delay(attempt),
        };
        let running = jobs::run(&self.context, job, tries);
        tokio::pin!(running);
        let leased = queue::describe(job).0 == "process_document";
        let mut handed_over = false;
        let outcome = tokio::select! {
            outcome = &mut running => outcome,
            () = tokio::time::sleep(self.hand_over_after), if leased => {
                handed_over = ack(&delivery.acker).await;
                if handed_over {
                    tracing::info!(after = ?self.hand_over_after, "job still running: acked early, its document's lease holds it from now on");
                }
                running.await
            }
        };
        let elapsed = started.elapsed();
        let kind = queue::describe(job).0;
        let ended = |outcome: &'static str| metrics::counter!(folio_core::metrics::JOBS, "kind" => kind, "outcome" => outcome).increment(1);
        let settle_as = match outcome {
            Ok(Outcome::Applied) => {
                ended("done");
                tracing::info!(?elapsed, "job done");
                Settle::Ack
            }
            Ok(Outcome::Duplicate) => {
                ended("duplicate");
                tracing::info!("job seen before, acked without running it again");
                Settle::Ack
            }
            Err(JobError::Superseded(reason)) => {
                ended("superseded");
                tracing::info!(%reason, "the job's document moved on without it, acked");
                Settle::Ack
            }
            Err(JobError::Permanent { code, message }) => {
                ended("failed");
                tracing::error!(code, %message, "job failed permanently, dead-lettering it");
                jobs::failed(&self.context, job, tries, code, &message).await;
                Settle::Reject
            }
            Err(JobError::Transient(error)) => match tries.retry_delay {
                Some(delay) => {
                    ended("retried");
                    let retried = self
                        .schedule_retry(publishing, &delivery.data, &job.job_id, attempt + 1, delay)
                        .await;
                    match retried {
                        Ok(()) => {
                            tracing::warn!(
                                error = format!("{error:#}"),
                                ?delay,
                                "job failed, retry {} of {} scheduled",
                                attempt + 1,
                                self.topology.max_attempts()
                            );
                            jobs::retry_scheduled(&self.context, job, tries, delay, &error).await;
                            Settle::Ack
                        }
                        Err(publish_error) if handed_over => {
                            // Nothing to requeue: publish it until it is confirmed.
                            tracing::warn!(error = format!("{error:#}"), %publish_error, "the retry of a job handed over to its lease could not be published; trying again");
                            self.publish_retry_until_confirmed(publishing, &delivery.data, &job.job_id, attempt + 1, delay)
                                .await;
                            jobs::retry_scheduled(&self.context, job, tries, delay, &error).await;
                            Settle::Ack
                        }
                        Err(publish_error) => {
                            // Requeued at once, a failure that repeats (the
                            // broker refusing the retry queue) would loop at
                            // full speed: wait out part of the delay first.
                            let pause = delay.min(REQUEUE_PAUSE_MAX);
                            tracing::warn!(error = format!("{error:#}"), %publish_error, ?pause, "job failed and its retry could not be scheduled, requeueing after a pause");
                            tokio::time::sleep(pause).await;
                            Settle::Requeue
                        }
                    }
                }
                None => {
                    ended("failed");
                    tracing::error!(error = format!("{error:#}"), "job failed on its last attempt, dead-lettering it");
                    jobs::failed(&self.context, job, tries, "UNAVAILABLE", &jobs::unavailable(&error, false)).await;
                    Settle::Reject
                }
            },
        };
        if handed_over {
            // Acked already; how it ended is recorded on the document.
            return;
        }
        settle(&delivery.acker, settle_as).await;
    }

    async fn schedule_retry(
        &self,
        publishing: &Channel,
        payload: &[u8],
        job_id: &str,
        next_attempt: u32,
        delay: Duration,
    ) -> Result<(), queue::PublishError> {
        let job_id = job_id.parse().unwrap_or_default();
        let confirm = queue::publish(
            publishing,
            &self.topology.retry_exchange(),
            &Topology::retry_key(delay),
            job_id,
            payload,
            next_attempt,
        )
        .await?;
        queue::confirmed(confirm).await
    }

    /// Publishes a retry until the broker confirms it (pausing between
    /// tries), for a job that can no longer be requeued: on the session's
    /// channel while it lives, then on a connection of its own.
    async fn publish_retry_until_confirmed(&self, publishing: &Channel, payload: &[u8], job_id: &str, next_attempt: u32, delay: Duration) {
        let mut own: Option<(Connection, Channel)> = None;
        loop {
            tokio::time::sleep(delay.min(REQUEUE_PAUSE_MAX)).await;
            if !publishing.status().connected() && own.as_ref().is_none_or(|(_, c)| !c.status().connected()) {
                match self.publishing_channel().await {
                    Ok(fresh) => own = Some(fresh),
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "no channel to publish a retry on yet");
                        continue;
                    }
                }
            }
            let channel = match &own {
                Some((_, channel)) if !publishing.status().connected() => channel,
                _ => publishing,
            };
            match self.schedule_retry(channel, payload, job_id, next_attempt, delay).await {
                Ok(()) => break,
                Err(error) => tracing::warn!(%error, "the retry could not be published yet"),
            }
        }
        if let Some((connection, _)) = own {
            let _ = connection.close(200, "retry published".into()).await;
        }
    }

    /// A connection of its own and a channel on it with publisher confirms.
    async fn publishing_channel(&self) -> anyhow::Result<(Connection, Channel)> {
        let connection = Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .context("connect")?;
        let channel = connection.create_channel().await.context("open channel")?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enable confirms")?;
        Ok((connection, channel))
    }
}

impl Consumer {
    /// Ends the document of a dead-lettered job FAILED (unless it was recorded
    /// already or the document moved on), records the dead letter in
    /// `dead_letters`, then acks it. While the database is away the dead
    /// letter is requeued after a pause.
    async fn settle_dead_letter(&self, delivery: Delivery) {
        let job = queue::decode(&delivery.data).ok();
        let context = job
            .as_ref()
            .and_then(queue::trace_of)
            .map_or_else(TraceContext::root, |caller| caller.child());
        let span = tracing::info_span!("dead_letter", trace_id = %context.trace_id_hex());
        folio_core::telemetry::continue_trace(&span, &context);
        trace::scope(context, self.settle_dead_letter_of(delivery, job).instrument(span)).await;
    }

    /// Settles a dead letter whose job is `job` (None: undecodable).
    async fn settle_dead_letter_of(&self, delivery: Delivery, job: Option<Job>) {
        let reason = queue::death_reason(&delivery.properties).unwrap_or_else(|| "unknown".into());
        let attempt = queue::delivery_attempt(&delivery.properties);
        let (kind, document_id) = job.as_ref().map_or(("undecodable", None), queue::describe);
        let mut settled = true;
        if let Some(job) = &job {
            tracing::warn!(job_id = %job.job_id, kind, %reason, "job dead-lettered");
            let tries = jobs::Delivery {
                number: attempt,
                max: self.topology.max_attempts(),
                token: uuid::Uuid::new_v4(),
                retry_delay: None,
            };
            let (code, message) = dead_letter_failure(&reason);
            settled = jobs::failed(&self.context, job, tries, code, message).await;
        }
        if settled {
            let letter = dead_letter::NewDeadLetter {
                job_id: job.as_ref().and_then(|j| j.job_id.parse().ok()),
                kind,
                document_id,
                attempt: attempt as i32,
                reason: &reason,
                payload: &delivery.data,
            };
            settled = match self.context.pool.get().await {
                Ok(mut conn) => dead_letter::record(&mut conn, &letter).await.is_ok(),
                Err(_) => false,
            };
        }
        if settled {
            settle(&delivery.acker, Settle::Ack).await;
        } else {
            tracing::warn!(kind, %reason, "dead letter not settled: the database is away; requeueing it after a pause");
            tokio::time::sleep(REQUEUE_PAUSE_MAX).await;
            settle(&delivery.acker, Settle::Requeue).await;
        }
    }
}

/// The code and the client's message for a document whose job was
/// dead-lettered for `reason`.
fn dead_letter_failure(reason: &str) -> (&'static str, &'static str) {
    match reason {
        "delivery_limit" => (
            "DELIVERY_LIMIT",
            "processing stopped without finishing more often than the delivery limit allows: \
             the worker running it stopped or crashed each time",
        ),
        _ => ("DEAD_LETTERED", "the queue set the job aside before it finished"),
    }
}

/// Dead letters one worker settles at once.
const DEAD_LETTER_PREFETCH: u16 = 4;
/// The longest pause before a delivery is requeued.
const REQUEUE_PAUSE_MAX: Duration = Duration::from_secs(5);

enum Settle {
    Ack,
    Reject,
    Requeue,
}

/// Acks a delivery now; false if its channel is gone (the broker redelivers it).
async fn ack(acker: &Acker) -> bool {
    matches!(acker.ack(BasicAckOptions::default()).await, Ok(true))
}

async fn settle(acker: &Acker, how: Settle) {
    let result = match how {
        Settle::Ack => acker.ack(BasicAckOptions::default()).await,
        Settle::Reject => acker.reject(BasicRejectOptions { requeue: false }).await,
        Settle::Requeue => {
            acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
        }
    };
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!("delivery's channel is gone; the broker will redeliver it"),
        Err(error) => {
            tracing::warn!(%error, "could not settle delivery; the broker will redeliver it")
        }
    }
}

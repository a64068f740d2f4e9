//! The RabbitMQ contract: exchange and queue names (all under one prefix), their
//! idempotent declaration, the job message and publishing with confirms.
//!
//! ```text
//! <p>.jobs (direct) --"process"--> <p>.process (quorum, x-delivery-limit)
//!                                       | rejected / over the delivery limit
//!                                       v
//!                                  <p>.dead (fanout) --> <p>.dead (quorum)
//! <p>.retry (direct) --"<ms>ms"--> <p>.retry.<ms>ms (quorum, x-message-ttl)
//!                                       | expired: dead-lettered back
//!                                       v
//!                                  <p>.jobs --"process"--> <p>.process
//! ```
//!
//! A worker that meets a transient error publishes the job to the retry queue for
//! its attempt (confirmed) and then acks the original; the retry queue holds it
//! for its TTL and dead-letters it back to the job queue. Retry queues are named
//! by their delay, so changing the delays declares new queues instead of
//! clashing with the arguments of old ones.

use std::time::Duration;

use folio_proto::queue::v1::{Job, Ping, ProcessDocument, ReindexDocument, job};
use lapin::{
    BasicProperties, Channel, Confirmation, ExchangeKind, PublisherConfirm,
    options::{BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use prost::Message as _;
use uuid::Uuid;

use crate::config::Config;

/// Routing key of jobs on the jobs exchange.
pub const PROCESS_KEY: &str = "process";
/// Header carrying the 1-based attempt number of a delivery.
pub const ATTEMPT_HEADER: &str = "x-folio-attempt";

/// The names and arguments of folio's exchanges and queues.
#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    retry_delays: Vec<Duration>,
}

impl Topology {
    /// The topology `config` describes.
    pub fn new(config: &Config) -> Self {
        let retries = config.max_attempts.saturating_sub(1);
        let retry_delays = (0..retries)
            .map(|n| {
                config
                    .retry_base
                    .saturating_mul(4u32.saturating_pow(n))
                    .min(Duration::from_secs(3600))
            })
            .collect();
        Topology {
            prefix: config.amqp_prefix.clone(),
            delivery_limit: config.delivery_limit,
            retry_delays,
        }
    }

    /// The exchange jobs are published to.
    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// The queue workers consume.
    pub fn process_queue(&self) -> String {
        format!("{}.process", self.prefix)
    }

    /// Where rejected jobs and jobs past the delivery limit go (exchange and
    /// queue share the name).
    pub fn dead_letter(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// The exchange that routes a job to the retry queue for its delay.
    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.prefix)
    }

    /// How long the job waits before attempt `attempt + 1`, after attempt
    /// `attempt` (1-based) failed transiently; `None` when none is left.
    pub fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        self.retry_delays.get(attempt.checked_sub(1)? as usize).copied()
    }

    /// The total number of attempts a job gets.
    pub fn max_attempts(&self) -> u32 {
        self.retry_delays.len() as u32 + 1
    }

    /// The retry exchange's routing key for a delay (also the retry queue's
    /// suffix).
    pub fn retry_key(delay: Duration) -> String {
        format!("{}ms", delay.as_millis())
    }

    /// Every queue this topology declares, for tests and tooling that clean up.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = vec![self.process_queue(), self.dead_letter()];
        queues.extend(
            self.retry_delays
                .iter()
                .map(|d| format!("{}.retry.{}", self.prefix, Self::retry_key(*d))),
        );
        queues
    }

    /// Every exchange this topology declares.
    pub fn exchanges(&self) -> Vec<String> {
        vec![self.jobs_exchange(), self.dead_letter(), self.retry_exchange()]
    }

    /// Declares every exchange, queue and binding. Idempotent: declaring what
    /// exists with the same arguments is a no-op.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable_exchange = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                self.jobs_exchange().into(),
                ExchangeKind::Direct,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter().into(),
                ExchangeKind::Fanout,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.retry_exchange().into(),
                ExchangeKind::Direct,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;

        let mut dead_args = FieldTable::default();
        dead_args.insert("x-queue-type".into(), string("quorum"));
        channel.queue_declare(self.dead_letter().into(), durable_queue, dead_args).await?;
        channel
            .queue_bind(
                self.dead_letter().into(),
                self.dead_letter().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut process_args = quorum_dead_lettering(&self.dead_letter(), "dead");
        process_args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(i64::from(self.delivery_limit)));
        channel
            .queue_declare(self.process_queue().into(), durable_queue, process_args)
            .await?;
        channel
            .queue_bind(
                self.process_queue().into(),
                self.jobs_exchange().into(),
                PROCESS_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        for delay in &self.retry_delays {
            let key = Self::retry_key(*delay);
            let queue = format!("{}.retry.{key}", self.prefix);
            let mut args = quorum_dead_lettering(&self.jobs_exchange(), PROCESS_KEY);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(delay.as_millis() as i64));
            channel.queue_declare(queue.as_str().into(), durable_queue, args).await?;
            channel
                .queue_bind(
                    queue.into(),
                    self.retry_exchange().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Arguments of a quorum queue that dead-letters at least once (not at most
/// once, RabbitMQ's default) to `exchange` with `routing_key`.
fn quorum_dead_lettering(exchange: &str, routing_key: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), string("quorum"));
    args.insert("x-dead-letter-exchange".into(), string(exchange));
    args.insert("x-dead-letter-routing-key".into(), string(routing_key));
    args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
    args.insert("x-overflow".into(), string("reject-publish"));
    args
}

fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// A job ready for the outbox: its id, a short kind for operators, and the
/// encoded [`Job`] message.
#[derive(Clone, Debug)]
pub struct EncodedJob {
    pub job_id: Uuid,
    pub kind: &'static str,
    pub payload: Vec<u8>,
}

impl EncodedJob {
    /// A ping job for the ping `ping_id`.
    pub fn ping(ping_id: Uuid) -> Self {
        Self::new(
            "ping",
            job::Kind::Ping(Ping {
                ping_id: ping_id.to_string(),
            }),
        )
    }

    /// A job to run the pipeline for `attempt` of the document.
    pub fn process_document(document_id: Uuid, attempt: i32) -> Self {
        Self::new(
            "process_document",
            job::Kind::ProcessDocument(ProcessDocument {
                document_id: document_id.to_string(),
                attempt: attempt.max(1) as u32,
            }),
        )
    }

    /// A job to re-embed a READY document's chunks with `model`.
    pub fn reindex_document(document_id: Uuid, model: &str) -> Self {
        Self::new(
            "reindex_document",
            job::Kind::ReindexDocument(ReindexDocument {
                document_id: document_id.to_string(),
                model: model.to_owned(),
            }),
        )
    }

    fn new(kind: &'static str, body: job::Kind) -> Self {
        let job_id = Uuid::now_v7();
        let now = chrono::Utc::now();
        let job = Job {
            job_id: job_id.to_string(),
            enqueued_at: Some(prost_types_timestamp(now)),
            // The call's or job's trace goes on with the job.
            trace_context: crate::trace::current()
                .map(|context| [(crate::trace::TRACEPARENT.to_owned(), context.child().traceparent())].into())
                .unwrap_or_default(),
            kind: Some(body),
        };
        EncodedJob {
            job_id,
            kind,
            payload: job.encode_to_vec(),
        }
    }
}

fn prost_types_timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// The trace context `job` carries, if it carries a valid one.
pub fn trace_of(job: &Job) -> Option<crate::trace::TraceContext> {
    job.trace_context
        .get(crate::trace::TRACEPARENT)
        .and_then(|value| crate::trace::TraceContext::parse(value))
}

/// Why a publish did not count as delivered to the broker.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The connection or channel failed.
    #[error("broker connection failed: {0}")]
    Connection(#[from] lapin::Error),
    /// The broker could not route the message (mandatory publish returned).
    #[error("broker returned the message as unroutable: {0}")]
    Returned(String),
    /// The broker refused the message.
    #[error("broker refused the message (nack)")]
    Nacked,
    /// The channel was not in confirm mode; a programming error.
    #[error("publisher confirms are not enabled on the channel")]
    NotConfirmed,
    /// No confirm came within [`CONFIRM_TIMEOUT`] (a broker that blocks
    /// publishers under a resource alarm, or a connection that hangs).
    #[error("no confirm from the broker within {0:?}")]
    Unconfirmed(Duration),
}

/// How long a publish may wait for its confirm before it counts as failed.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a persistent, mandatory publish. The channel must be in confirm mode;
/// await the returned confirm with [`confirmed`].
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    job_id: Uuid,
    payload: &[u8],
    attempt: u32,
) -> Result<PublisherConfirm, PublishError> {
    let mut headers = FieldTable::default();
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt));
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(job_id.to_string()))
        .with_content_type("application/x-protobuf".into())
        .with_headers(headers);
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    Ok(channel
        .basic_publish(exchange.into(), routing_key.into(), options, payload, properties)
        .await?)
}

/// Waits up to [`CONFIRM_TIMEOUT`] for a publish's confirm. Only an Ack
/// without a returned message is a success: an Ack carrying a returned message
/// means nothing was routed.
pub async fn confirmed(confirm: PublisherConfirm) -> Result<(), PublishError> {
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
        .await
        .map_err(|_| PublishError::Unconfirmed(CONFIRM_TIMEOUT))??;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(PublishError::Returned(format!("{} {}", returned.reply_code, returned.reply_text)))
        }
        Confirmation::Nack(None) => Err(PublishError::Nacked),
        Confirmation::NotRequested => Err(PublishError::NotConfirmed),
    }
}

/// The attempt number a delivery carries (1 when the header is absent).
pub fn delivery_attempt(properties: &BasicProperties) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(ATTEMPT_HEADER))
        .and_then(|value| match value {
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            _ => None,
        })
        .unwrap_or(1)
}

/// Why the broker dead-lettered a message: `delivery_limit` (delivered more
/// often than the process queue's `x-delivery-limit` without an ack: a worker
/// that died on it each time), `rejected` (a worker rejected it) or another
/// reason RabbitMQ names; None for a message that was not dead-lettered.
pub fn death_reason(properties: &BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?.inner();
    let text = |value: &AMQPValue| match value {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    };
    if let Some(reason) = headers.get("x-first-death-reason").and_then(text) {
        return Some(reason);
    }
    match headers.get("x-death")? {
        AMQPValue::FieldArray(deaths) => deaths.as_slice().iter().find_map(|death| match death {
            AMQPValue::FieldTable(death) => death.inner().get("reason").and_then(text),
            _ => None,
        }),
        _ => None,
    }
}

/// A job's kind as the outbox names it, and the document it is about.
pub fn describe(job: &Job) -> (&'static str, Option<Uuid>) {
    match &job.kind {
        Some(job::Kind::Ping(_)) => ("ping", None),
        Some(job::Kind::ProcessDocument(body)) => ("process_document", body.document_id.parse().ok()),
        Some(job::Kind::ReindexDocument(body)) => ("reindex_document", body.document_id.parse().ok()),
        None => ("unknown", None),
    }
}

/// Decodes a job message.
pub fn decode(payload: &[u8]) -> Result<Job, prost::DecodeError> {
    Job::decode(payload)
}

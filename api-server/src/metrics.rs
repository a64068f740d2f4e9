//! The api-server's part of the metrics (names and the endpoint are in
//! `folio_core::metrics`): [`Call`], which counts and times every call by
//! service, method and gRPC code (`observe::ObserveLayer` starts one per
//! call), and [`ApiSampler`], which reads
//! what Postgres and RabbitMQ hold (documents by state, the outbox, the index
//! backlog, the queues) when Prometheus scrapes.
//!
//! A call's code is read where gRPC puts it: the response headers of an
//! answer without a body (most errors), otherwise the trailers at the end of
//! the body; a call dropped before either (the client went away) counts as
//! CANCELLED. A stream is timed until it ends. Paths that name no method
//! folio serves count as `unknown`, so a client cannot invent label values.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use folio_core::metrics::{self as names, Sampler};
use folio_db::{self as db, documents::state::State};
use futures_util::future::BoxFuture;
use http_body::Frame;
use metrics::{counter, gauge, histogram};
use prost::Message as _;
use tonic::{Status, body::Body};

use crate::{audit::AuditStats, health::Dependencies};

/// Every method the server answers: its path, and its service and method
/// names as labels. Read once from the descriptor sets the server registers.
fn methods() -> &'static HashMap<String, (&'static str, &'static str)> {
    static METHODS: OnceLock<HashMap<String, (&'static str, &'static str)>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut methods = HashMap::new();
        for encoded in [
            folio_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            let set = prost_types::FileDescriptorSet::decode(encoded).expect("a built-in descriptor set decodes");
            for file in set.file {
                for service in &file.service {
                    // Leaked once per process: a few dozen short names.
                    let service_name: &'static str = format!("{}.{}", file.package(), service.name()).leak();
                    for method in &service.method {
                        let method_name: &'static str = method.name().to_owned().leak();
                        methods.insert(format!("/{service_name}/{method_name}"), (service_name, method_name));
                    }
                }
            }
        }
        methods
    })
}

/// The name gRPC gives a status code, from its `grpc-status` value.
fn code_name(value: &[u8]) -> &'static str {
    let code = std::str::from_utf8(value).ok().and_then(|v| v.parse::<i32>().ok());
    match code.map(tonic::Code::from_i32) {
        Some(tonic::Code::Ok) => "OK",
        Some(tonic::Code::Cancelled) => "CANCELLED",
        Some(tonic::Code::Unknown) | None => "UNKNOWN",
        Some(tonic::Code::InvalidArgument) => "INVALID_ARGUMENT",
        Some(tonic::Code::DeadlineExceeded) => "DEADLINE_EXCEEDED",
        Some(tonic::Code::NotFound) => "NOT_FOUND",
        Some(tonic::Code::AlreadyExists) => "ALREADY_EXISTS",
        Some(tonic::Code::PermissionDenied) => "PERMISSION_DENIED",
        Some(tonic::Code::ResourceExhausted) => "RESOURCE_EXHAUSTED",
        Some(tonic::Code::FailedPrecondition) => "FAILED_PRECONDITION",
        Some(tonic::Code::Aborted) => "ABORTED",
        Some(tonic::Code::OutOfRange) => "OUT_OF_RANGE",
        Some(tonic::Code::Unimplemented) => "UNIMPLEMENTED",
        Some(tonic::Code::Internal) => "INTERNAL",
        Some(tonic::Code::Unavailable) => "UNAVAILABLE",
        Some(tonic::Code::DataLoss) => "DATA_LOSS",
        Some(tonic::Code::Unauthenticated) => "UNAUTHENTICATED",
    }
}

fn status_in(headers: &http::HeaderMap) -> Option<&'static str> {
    headers.get("grpc-status").map(|value| code_name(value.as_bytes()))
}

/// One call being measured; recorded when dropped, with the code found by
/// then (CANCELLED if none was). `observe::ObserveLayer` runs it.
pub struct Call {
    service: &'static str,
    method: &'static str,
    started: Instant,
    code: &'static str,
}

impl Call {
    /// Starts measuring a call to `path`.
    pub fn start(path: &str) -> Self {
        let (service, method) = methods().get(path).copied().unwrap_or(("unknown", "unknown"));
        Call {
            service,
            method,
            started: Instant::now(),
            code: "CANCELLED",
        }
    }

    /// Ends the measure with the answer's code when `response` carries it
    /// (an answer without a body), else when its body's trailers pass.
    pub fn answered(self, response: http::Response<Body>) -> http::Response<Body> {
        match status_in(response.headers()) {
            Some(code) => {
                self.end(code);
                response
            }
            None => response.map(|body| {
                Body::new(MeteredBody {
                    inner: body,
                    call: Some(self),
                })
            }),
        }
    }

    /// Records the call as ended with `code`.
    fn end(mut self, code: &'static str) {
        self.code = code;
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let (service, method, code) = (self.service, self.method, self.code);
        counter!(names::RPC_REQUESTS, "service" => service, "method" => method, "code" => code).increment(1);
        histogram!(names::RPC_DURATION, "service" => service, "method" => method).record(self.started.elapsed().as_secs_f64());
    }
}

/// A response body that records its call when the trailers pass (or when it
/// is dropped before them).
struct MeteredBody {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for MeteredBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|trailers| status_in(trailers).unwrap_or("UNKNOWN")),
            Poll::Ready(Some(Err(_))) => Some("INTERNAL"),
            // Ended without trailers: not a gRPC answer.
            Poll::Ready(None) => Some("UNKNOWN"),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(call) = self.call.take()
        {
            call.end(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Reads, at each scrape, what the api-server's gauges show.
pub struct ApiSampler {
    pub dependencies: Dependencies,
    pub audit: Arc<AuditStats>,
}

impl Sampler for ApiSampler {
    fn sample(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            db::record_pool_metrics(&self.dependencies.pool);
            let audit = self.audit.snapshot();
            counter!(names::AUDIT_WRITTEN).absolute(audit.written);
            counter!(names::AUDIT_DELAYED).absolute(audit.delayed);
            counter!(names::AUDIT_SPILLED).absolute(audit.spilled);
            counter!(names::AUDIT_LOST).absolute(audit.lost);
            let (database, queues) = tokio::join!(self.database(), self.queues());
            if let Err(error) = database {
                tracing::warn!(error = format!("{error:#}"), "metrics: cannot read the database's counts");
            }
            if let Err(error) = queues {
                tracing::warn!(error = format!("{error:#}"), "metrics: cannot read the queues' depths");
            }
        })
    }
}

impl ApiSampler {
    async fn database(&self) -> anyhow::Result<()> {
        let mut conn = self.dependencies.pool.get().await?;
        let counts = db::models::document::counts_by_state(&mut conn, None).await?;
        for state in State::ALL {
            let documents = counts.iter().find(|c| c.state == *state).map_or(0, |c| c.documents);
            gauge!(names::DOCUMENTS, "state" => state.as_str()).set(documents as f64);
        }
        let (pending, stalled_since) = db::models::outbox::unsent_summary(&mut conn).await?;
        gauge!(names::OUTBOX_PENDING).set(pending as f64);
        let age = stalled_since.map_or(0.0, |at| (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0);
        gauge!(names::OUTBOX_OLDEST).set(age);
        let backlog = db::models::segment::open_count(&mut conn).await?;
        gauge!(names::INDEX_BACKLOG).set(backlog as f64);
        Ok(())
    }

    async fn queues(&self) -> anyhow::Result<()> {
        let topology = &self.dependencies.topology;
        for (label, queue) in [("process", topology.process_queue()), ("dead_letter", topology.dead_letter())] {
            let (messages, consumers) = self.dependencies.queue_depth(&queue).await?;
            gauge!(names::QUEUE_MESSAGES, "queue" => label).set(f64::from(messages));
            gauge!(names::QUEUE_CONSUMERS, "queue" => label).set(f64::from(consumers));
        }
        Ok(())
    }
}

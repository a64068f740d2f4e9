//! The tracing subscriber both binaries install: `RUST_LOG` filters (default
//! `info`), and lines are human-readable or JSON by `FOLIO_LOG_FORMAT`. Colours
//! only on a terminal, so piped and collected logs stay plain text.
//!
//! With `FOLIO_OTLP_ENDPOINT` set, spans are also exported over OTLP
//! (HTTP, protobuf) to that collector, batched on a thread of the exporter's
//! own; [`continue_trace`] makes a span a child of folio's trace context, so
//! the exported trace ids are the ones in the logs, the events and the job
//! messages. Off by default: then nothing of OpenTelemetry runs.

use std::io::IsTerminal as _;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, fmt, prelude::*};

use crate::{config::LogFormat, trace::TraceContext};

/// Keeps the OTLP exporter running; [`Telemetry::shutdown`] sends what it
/// still holds.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still batched (outside the async runtime: the
    /// exporter blocks).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("OTLP export: {error}");
        }
    }
}

/// Installs the global subscriber, exporting spans to `otlp_endpoint` (a
/// collector's base URL; spans go to its `/v1/traces`) as `service` when it
/// is set. Call once, early in `main`.
pub fn init(service: &str, format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (otel, provider) = match otlp_endpoint {
        Some(endpoint) => {
            // The exporter's reqwest needs the TLS provider installed first
            // (`startup::run_binary` does).
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .map_err(|error| anyhow::anyhow!("setting FOLIO_OTLP_ENDPOINT: {error}"))?;
            let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build();
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            let tracer = provider.tracer("folio");
            (Some(tracing_opentelemetry::layer().with_tracer(tracer)), Some(provider))
        }
        None => (None, None),
    };
    let logs = match format {
        // Every span around the line, outermost first: the `rpc` or `job`
        // span names the trace id.
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
        LogFormat::Text => fmt::layer().with_target(true).with_ansi(std::io::stdout().is_terminal()).boxed(),
    };
    tracing_subscriber::registry().with(filter).with(logs).with(otel).init();
    Ok(Telemetry { provider })
}

/// Makes `span` a child of `context` in the exported trace (a no-op
/// without OTLP export).
pub fn continue_trace(span: &tracing::Span, context: &TraceContext) {
    let parent = SpanContext::new(
        TraceId::from_bytes(context.trace_id),
        SpanId::from_bytes(context.span_id),
        if context.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}

//! The observing layer, outermost of all, so it sees each call as the client
//! does. Every call runs in the trace its caller's `traceparent` header
//! names (a valid one; else a new trace), inside `folio_core::trace::scope`
//! (so the jobs it enqueues, the events it writes and the errors it answers
//! carry the trace id) and inside an `rpc` span with the trace id (so every
//! log line of the call carries it); the answer's `folio-trace-id` header
//! tells the caller which trace it was. And every call is counted and timed
//! by service, method and code ([`crate::metrics::Call`]).

use std::task::{Context, Poll};

use folio_core::trace::{self, TRACEPARENT, TraceContext};
use futures_util::future::BoxFuture;
use tonic::body::Body;
use tracing::Instrument as _;

use crate::metrics::Call;

/// The response header that names the call's trace id.
pub const TRACE_ID_HEADER: &str = "folio-trace-id";

/// The layer; `Server::builder().layer(ObserveLayer)`, before the others.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed { inner }
    }
}

/// The service the layer wraps around the gRPC routes.
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for Observed<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let caller = request
            .headers()
            .get(TRACEPARENT)
            .and_then(|value| value.to_str().ok())
            .and_then(TraceContext::parse);
        let context = caller.map_or_else(TraceContext::root, |caller| caller.child());
        let trace_id = context.trace_id_hex();
        let call = Call::start(request.uri().path());
        let span = tracing::info_span!("rpc", trace_id = %trace_id, rpc = %request.uri().path());
        // Exported as a child of the caller's span (or in the new trace).
        folio_core::telemetry::continue_trace(&span, &caller.unwrap_or(context));
        Box::pin(
            trace::scope(context, async move {
                let mut response = inner.call(request).await?;
                if let Ok(value) = http::HeaderValue::from_str(&trace_id) {
                    response.headers_mut().insert(TRACE_ID_HEADER, value);
                }
                Ok(call.answered(response))
            })
            .instrument(span),
        )
    }
}

//! The deadline of every call: the client's (`grpc-timeout`) or the server's
//! bound for the call's class, whichever comes first. Past it the handler's
//! future is dropped, which ends its work where it stands (nothing after the
//! await it was in runs), and the client is answered DEADLINE_EXCEEDED with
//! ErrorInfo reason `DEADLINE_EXCEEDED`. A Postgres statement already sent is
//! cancelled by Postgres by the same deadline: the handler runs inside
//! `folio_db::with_deadline`, and every connection it checks out gets what is
//! left of the deadline (or the pool's bound, when shorter), plus 100 ms, as
//! its `statement_timeout` (see `folio_db`). Should the cancelled statement's
//! error still reach this layer before its timer, a refusal made at or past
//! the deadline is answered DEADLINE_EXCEEDED too.
//!
//! Classes: `UploadDocument` reads the whole upload inside its handler, so it
//! has a bound of its own (`FOLIO_UPLOAD_DEADLINE_SECS`); every other call
//! has `FOLIO_RPC_DEADLINE_SECS`. For the streams folio sends (watches,
//! downloads) the bound covers starting the stream, not the stream itself.
//!
//! tonic also enforces the client's `grpc-timeout`, but answers CANCELLED
//! ("Timeout expired"); this layer fires [`MARGIN`] earlier so that clients
//! see the code the gRPC specification names.
//!
//! The layer also rewords two refusals tonic makes before any handler runs
//! ([`explain`]): a request message over the service's size limit is
//! answered RESOURCE_EXHAUSTED (the code gRPC names for it, where tonic says
//! OUT_OF_RANGE) with ErrorInfo reason `MESSAGE_TOO_LARGE` and a message that
//! points to `UploadDocument`; a compressed request (folio accepts none, so no
//! inflation needs bounding) UNIMPLEMENTED with reason
//! `COMPRESSION_UNSUPPORTED`, saying to send it uncompressed.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::BoxFuture;
use tonic::{Code, Status, body::Body};

use crate::error::ApiError;

/// How much earlier than tonic's own timer this layer gives up.
pub const MARGIN: Duration = Duration::from_millis(5);

/// The server's bound of each class of call.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// Every call but uploads.
    pub rpc: Duration,
    /// `UploadDocument`.
    pub upload: Duration,
}

impl Deadlines {
    /// The server's bound for the call at `path`.
    pub fn bound(&self, path: &str) -> Duration {
        if path == "/folio.v1.DocumentService/UploadDocument" {
            self.upload
        } else {
            self.rpc
        }
    }
}

/// A `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn client_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok().filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The layer; `Server::builder().layer(DeadlineLayer(deadlines))`.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer(pub Deadlines);

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Bounded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bounded { inner, deadlines: self.0 }
    }
}

/// The service the layer wraps around the gRPC routes.
#[derive(Clone)]
pub struct Bounded<S> {
    inner: S,
    deadlines: Deadlines,
}

impl<S> tower::Service<http::Request<Body>> for Bounded<S>
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
        let bound = self.deadlines.bound(request.uri().path());
        let client = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(client_timeout);
        let (limit, whose) = match client {
            Some(client) if client <= bound => (client.saturating_sub(MARGIN), "the client's deadline"),
            _ => (bound, "the server's bound for this call"),
        };
        // The instant is taken here, in `call`, not when the future is first
        // polled: tonic takes its own after this `call` returns, so ours is
        // always the earlier, and tonic polls the inner future (this one)
        // before its timer, so this answer wins even when both have passed.
        let deadline = tokio::time::Instant::now() + limit;
        Box::pin(async move {
            let work = folio_db::with_deadline(deadline, inner.call(request));
            let exceeded = || {
                let message = format!("{whose} ({} ms) passed before the call finished", limit.as_millis());
                Status::from(ApiError::DeadlineExceeded(message)).into_http()
            };
            match tokio::time::timeout_at(deadline, work).await {
                // A refusal made at or past the deadline was made because of
                // it (a statement Postgres cancelled as the deadline passed,
                // polled before this timer on a busy runtime): the call ended
                // at its deadline, and says so.
                Ok(Ok(response)) if Status::from_header_map(response.headers()).is_some() && tokio::time::Instant::now() >= deadline => {
                    Ok(exceeded())
                }
                Ok(result) => result.map(explain),
                Err(_) => Ok(exceeded()),
            }
        })
    }
}

/// How tonic's refusal of an oversized request message begins.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: ";
/// How tonic's refusal of a compressed request begins.
const TONIC_COMPRESSED: &str = "Content is compressed with ";

/// tonic's refusals of an oversized or a compressed request, reworded into
/// folio's errors; any other response passes unchanged.
pub fn explain(response: http::Response<Body>) -> http::Response<Body> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let error = match (status.code(), status.message()) {
        (Code::OutOfRange, message) if message.starts_with(TONIC_TOO_LARGE) => ApiError::TooLarge(format!(
            "the request message is too large ({}); send a document of this size with UploadDocument, \
             which streams it in chunks",
            &message[TONIC_TOO_LARGE.len()..]
        )),
        (Code::Unimplemented, message) if message.starts_with(TONIC_COMPRESSED) => ApiError::Unimplemented(format!(
            "folio accepts no compressed requests ({}); send the request uncompressed",
            message[TONIC_COMPRESSED.len()..].trim_end_matches(" which isn't supported")
        ))
        .because("COMPRESSION_UNSUPPORTED"),
        _ => return response,
    };
    Status::from(error).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_values_parse_as_the_specification_writes_them() {
        assert_eq!(client_timeout("500m"), Some(Duration::from_millis(500)));
        assert_eq!(client_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(client_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(client_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "5", "123456789S", "-5S", "+5S", "5s", "5 S", "5X"] {
            assert_eq!(client_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uploads_have_their_own_bound() {
        let deadlines = Deadlines {
            rpc: Duration::from_secs(90),
            upload: Duration::from_secs(3600),
        };
        assert_eq!(deadlines.bound("/folio.v1.DocumentService/UploadDocument"), deadlines.upload);
        assert_eq!(deadlines.bound("/folio.v1.DocumentService/CreateDocument"), deadlines.rpc);
    }
}

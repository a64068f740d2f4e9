//! Trace ids across the queue: every call gets a W3C trace context (the
//! caller's `traceparent` when it sends a valid one, else a new trace), and
//! the work it causes keeps the trace id wherever it runs. The api-server
//! runs each call inside [`scope`]; a job enqueued there carries the context
//! in its message (`Job.trace_context["traceparent"]`, see
//! [`crate::queue::EncodedJob`]); the worker runs the job inside the scope of
//! that context. Log lines carry the trace id through the span each side
//! opens around the work (`rpc`, `job`), document events and error
//! references through [`current`].
//!
//! The format is W3C Trace Context's `traceparent`:
//! `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`.

use std::future::Future;

/// The name of the header (and of the job message's entry) that carries it.
pub const TRACEPARENT: &str = "traceparent";

/// One hop of a trace: the trace's id and this hop's span id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's sampled flag (kept, not acted on).
    pub sampled: bool,
}

impl TraceContext {
    /// A new trace.
    pub fn root() -> Self {
        TraceContext {
            trace_id: *uuid::Uuid::new_v4().as_bytes(),
            span_id: new_span_id(),
            sampled: true,
        }
    }

    /// The next hop of the same trace: a new span id.
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: new_span_id(),
            ..*self
        }
    }

    /// Reads a `traceparent` value, or None when it is not a valid one
    /// (then the caller starts a new trace, as the specification says).
    /// Versions after 00 are read by their first four fields.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        if version.len() != 2 || version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        let version = hex::<1>(version)?;
        let trace_id = hex::<16>(trace)?;
        let span_id = hex::<8>(span)?;
        let flags = hex::<1>(flags)?;
        if version[0] == 0xff || trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// The `traceparent` value of this hop.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            to_hex(&self.span_id),
            u8::from(self.sampled)
        )
    }

    /// The trace id as 32 lowercase hex digits, as logs and clients show it.
    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The context of the call or job running on this task, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|context| *context).ok()
}

/// The current trace id in hex, if any.
pub fn current_id() -> Option<String> {
    current().map(|context| context.trace_id_hex())
}

/// Runs `work` with `context` as the current one.
pub async fn scope<F: Future>(context: TraceContext, work: F) -> F::Output {
    CURRENT.scope(context, work).await
}

fn new_span_id() -> [u8; 8] {
    let bytes = uuid::Uuid::new_v4();
    let mut id = [0; 8];
    id.copy_from_slice(&bytes.as_bytes()[..8]);
    id
}

/// `N` bytes from exactly `2N` lowercase hex digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut bytes = [0; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_reads_and_writes_back() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(value).unwrap();
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(context.sampled);
        assert_eq!(context.traceparent(), value);
        let child = context.child();
        assert_eq!(child.trace_id, context.trace_id);
        assert_ne!(child.span_id, context.span_id);
    }

    #[test]
    fn invalid_values_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        // A later version with more fields is read by its first four.
        assert!(TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more").is_some());
    }

    #[tokio::test]
    async fn the_current_context_is_the_scopes() {
        assert_eq!(current(), None);
        let context = TraceContext::root();
        let seen = scope(context, async { current() }).await;
        assert_eq!(seen, Some(context));
    }
}

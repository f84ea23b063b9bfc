//! Prometheus metrics at `/metrics`.
//!
//! Queues: per queue hosted here, the ready / unacked / delayed gauges and
//! counters of published, delivered, redelivered, acked, nacked and
//! dead-lettered messages (`rate()` over them gives rates). They are written
//! at scrape time from the hosted groups themselves — the depths from the
//! state, the counters from what `QueueGroup::propose` counted — rather than
//! kept in the process-wide registry, which cannot forget a series: when the
//! group manager removes a deleted (or moved) queue's group, its series are
//! gone from the next scrape. Per tenant, the same counters summed over the
//! tenant's queues (these outlive a deleted queue, so `rate()` over them never
//! sees a counter go backwards) and the publishes refused by the rate quota.
//!
//! Streams: per partition hosted here the earliest / end offsets and log
//! bytes, produced and fetched records and bytes (counters, fetches per
//! format), and per consumer group the lag of every partition of its stream —
//! reported by the broker coordinating the group (partition 0's), which asks
//! the brokers hosting the other partitions for their bounds (node key,
//! cached for `peers::BOUNDS_TTL`). Like the queues' series, they are written
//! from the hosted groups, so a deleted stream's series go with it.
//!
//! Every series is written at scrape time ([`queues`], [`streams`],
//! [`tenants`]) rather than kept in the `metrics` registry, which cannot
//! forget a series; the registry is left to whatever else records into it.

mod queues;
mod streams;
mod tenants;

use std::fmt::Write as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::node::Node;

/// The process-wide recorder, installed once.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; ours then sees no data.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The text of `GET /metrics`: what the recorder holds, then every series
/// read from the node.
pub async fn render(state: &Node) -> String {
    let mut text = handle().render();
    let topology = state.topology.current();
    let tenants = tenants::rows(&state.activity, &state.rate_refusals, |name| {
        topology.tenants.values().any(|t| t.name == name)
    });
    tenants::render(&mut text, &tenants);
    queues::render(&mut text, &queues::rows(state));
    let (partitions, lags) = streams::rows(state).await;
    streams::render(&mut text, &partitions, &lags);
    text
}

/// Starts a family: its `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "\n# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// One sample line with its labels.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    let _ = write!(out, "{name}{{");
    for (i, (label, value)) in labels.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(out, "{comma}{label}=\"{}\"", escape(value));
    }
    let _ = writeln!(out, "}} {value}");
}

/// A label value as the text format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "x"), ("b", "y\"")], 3);
        assert_eq!(out, "m{a=\"x\",b=\"y\\\"\"} 3\n");
    }
}

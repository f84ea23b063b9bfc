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
//! bytes (gauges at scrape time), produced and fetched records and bytes
//! (counters, fetches per format), and per consumer group the lag of every
//! partition of its stream — reported by the broker coordinating the group
//! (partition 0's), which asks the brokers hosting the other partitions for
//! their bounds (node key, cached for `peers::BOUNDS_TTL`).

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::extract::State;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::api::BrokerState;
use crate::queue::Totals;

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

/// Adds what one queue command did to its tenant's counters.
pub fn tenant_activity(tenant: &str, done: &Totals) {
    let label = [("tenant", tenant.to_string())];
    for (name, n) in [
        ("sluice_tenant_published_messages_total", done.published),
        ("sluice_tenant_published_bytes_total", done.published_bytes),
        ("sluice_tenant_delivered_messages_total", done.delivered),
        ("sluice_tenant_redelivered_messages_total", done.redelivered),
        ("sluice_tenant_acked_messages_total", done.acked),
        ("sluice_tenant_nacked_messages_total", done.nacked),
        (
            "sluice_tenant_dead_lettered_messages_total",
            done.dead_lettered,
        ),
    ] {
        if n > 0 {
            metrics::counter!(name, &label).increment(n);
        }
    }
}

/// Counts a publish refused by the tenant's rate quota.
pub fn rate_limited(tenant: &str) {
    metrics::counter!("sluice_publish_rate_limited_total", "tenant" => tenant.to_string())
        .increment(1);
}

/// Counts records and bytes produced to one stream partition.
pub fn stream_produced(tenant: &str, stream: &str, partition: u32, records: u64, bytes: u64) {
    let labels = [
        ("tenant", tenant.to_string()),
        ("stream", stream.to_string()),
        ("partition", partition.to_string()),
    ];
    metrics::counter!("sluice_stream_produced_records_total", &labels).increment(records);
    metrics::counter!("sluice_stream_produced_bytes_total", &labels).increment(bytes);
}

/// Counts records and bytes a fetch answered, per format (`json` decodes
/// records, `batches` sends stored bytes).
pub fn stream_fetched(
    (tenant, stream, partition): (&str, &str, u32),
    format: &'static str,
    records: u64,
    bytes: u64,
) {
    let labels = [
        ("tenant", tenant.to_string()),
        ("stream", stream.to_string()),
        ("partition", partition.to_string()),
        ("format", format.to_string()),
    ];
    metrics::counter!("sluice_stream_fetched_records_total", &labels).increment(records);
    metrics::counter!("sluice_stream_fetched_bytes_total", &labels).increment(bytes);
}

/// `GET /metrics`
pub async fn render(State(state): State<BrokerState>) -> String {
    let topology = state.topology.current();
    render_streams(&state, &topology).await;
    let mut rows: Vec<QueueRow> = state
        .groups
        .all()
        .iter()
        .map(|group| {
            let stats = group.view().read(|q| q.stats());
            QueueRow {
                tenant: group.spec.tenant.clone(),
                queue: group.spec.queue.clone(),
                depth: [stats.ready, stats.unacked, stats.delayed],
                ready_bytes: stats.ready_bytes,
                consumers: stats.consumers.len() as u64,
                totals: group.totals(),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.tenant, &a.queue).cmp(&(&b.tenant, &b.queue)));
    let mut text = handle().render();
    render_queues(&mut text, &rows);
    text
}

/// One hosted queue as `/metrics` shows it.
struct QueueRow {
    tenant: String,
    queue: String,
    /// Ready, unacked, delayed.
    depth: [u64; 3],
    ready_bytes: u64,
    consumers: u64,
    totals: Totals,
}

/// Appends the per-queue families, each family's samples together under its
/// `# TYPE` line as the text format requires.
fn render_queues(out: &mut String, rows: &[QueueRow]) {
    if rows.is_empty() {
        return;
    }
    family(
        out,
        "sluice_queue_messages",
        "gauge",
        "Messages in the queue by state",
    );
    for row in rows {
        for (state, value) in ["ready", "unacked", "delayed"].iter().zip(row.depth) {
            sample(out, "sluice_queue_messages", row, Some(state), value);
        }
    }
    type Field = fn(&QueueRow) -> u64;
    let series: [(&str, &str, &str, Field); 9] = [
        (
            "sluice_queue_ready_bytes",
            "gauge",
            "Bytes of ready message bodies",
            |r| r.ready_bytes,
        ),
        (
            "sluice_queue_consumers",
            "gauge",
            "Consumers holding messages or registered",
            |r| r.consumers,
        ),
        (
            "sluice_published_messages_total",
            "counter",
            "Messages stored",
            |r| r.totals.published,
        ),
        (
            "sluice_published_bytes_total",
            "counter",
            "Bytes of messages stored",
            |r| r.totals.published_bytes,
        ),
        (
            "sluice_delivered_messages_total",
            "counter",
            "Deliveries, redeliveries included",
            |r| r.totals.delivered,
        ),
        (
            "sluice_redelivered_messages_total",
            "counter",
            "Deliveries of messages delivered before",
            |r| r.totals.redelivered,
        ),
        (
            "sluice_acked_messages_total",
            "counter",
            "Messages acked",
            |r| r.totals.acked,
        ),
        ("sluice_nacked_messages_total", "counter", "Nacks", |r| {
            r.totals.nacked
        }),
        (
            "sluice_dead_lettered_messages_total",
            "counter",
            "Messages dead-lettered (or dropped without a dead-letter exchange)",
            |r| r.totals.dead_lettered,
        ),
    ];
    for (name, kind, help, field) in series {
        family(out, name, kind, help);
        for row in rows {
            sample(out, name, row, None, field(row));
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "\n# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn sample(out: &mut String, name: &str, row: &QueueRow, state: Option<&str>, value: u64) {
    let _ = write!(
        out,
        "{name}{{tenant=\"{}\",queue=\"{}\"",
        escape(&row.tenant),
        escape(&row.queue)
    );
    if let Some(state) = state {
        let _ = write!(out, ",state=\"{state}\"");
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

/// Adds to `bounds` those of the stream's partitions hosted elsewhere, one
/// (cached) call per hosting broker.
async fn remote_bounds(
    state: &BrokerState,
    tenant_id: i64,
    stream: &str,
    partitions: usize,
    bounds: &mut std::collections::BTreeMap<u32, sluice_stream::PartitionBounds>,
) {
    let hosts: std::collections::BTreeSet<String> = (0..partitions as u32)
        .filter(|p| !bounds.contains_key(p))
        .filter_map(|p| crate::api::forward::remote_stream_url(state, tenant_id, stream, Some(p)))
        .collect();
    let asks = hosts
        .iter()
        .map(|url| state.peers.stream_bounds(url, tenant_id, stream));
    for (url, answer) in hosts.iter().zip(futures_util::future::join_all(asks).await) {
        match answer {
            Ok(remote) => {
                for (p, b) in &remote.partitions {
                    bounds.entry(*p).or_insert(*b);
                }
            }
            Err(err) => {
                tracing::debug!(stream, broker = %url, error = %err, "no partition bounds for group lag")
            }
        }
    }
}

/// Per stream partition hosted here: earliest and end offsets and log bytes;
/// per consumer group coordinated here, the lag of each of its stream's
/// partitions, wherever hosted (a partition whose broker does not answer is
/// left out of this scrape, not reported as zero).
async fn render_streams(state: &BrokerState, topology: &crate::topology::Topology) {
    for ((tenant_id, name), stream) in topology.streams.iter() {
        let tenant = topology
            .tenants
            .get(tenant_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let mut bounds = std::collections::BTreeMap::new();
        for partition in 0..stream.partitions.len() as u32 {
            let Some(group) = state.partitions.get(*tenant_id, name, partition) else {
                continue;
            };
            let (earliest, end) = group.view().read(|p| (p.earliest_offset(), p.end_offset()));
            let log_bytes: u64 = group.log_bytes();
            let labels = [
                ("tenant", tenant.clone()),
                ("stream", name.clone()),
                ("partition", partition.to_string()),
            ];
            metrics::gauge!("sluice_stream_partition_earliest_offset", &labels)
                .set(earliest as f64);
            metrics::gauge!("sluice_stream_partition_end_offset", &labels).set(end as f64);
            metrics::gauge!("sluice_stream_partition_log_bytes", &labels).set(log_bytes as f64);
            bounds.insert(partition, sluice_stream::PartitionBounds { earliest, end });
        }
        let Some(coordinator) = state.partitions.get(*tenant_id, name, 0) else {
            continue;
        };
        remote_bounds(
            state,
            *tenant_id,
            name,
            stream.partitions.len(),
            &mut bounds,
        )
        .await;
        let lags = coordinator.view().coordinator(|c| {
            c.groups()
                .keys()
                .filter_map(|g| c.lag(g, &bounds).ok().map(|lag| (g.clone(), lag)))
                .collect::<Vec<_>>()
        });
        for (group, lag) in lags.unwrap_or_default() {
            for (partition, lag) in lag {
                let labels = [
                    ("tenant", tenant.clone()),
                    ("stream", name.clone()),
                    ("group", group.clone()),
                    ("partition", partition.to_string()),
                ];
                metrics::gauge!("sluice_stream_group_lag", &labels).set(lag as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tenant: &str, queue: &str, published: u64) -> QueueRow {
        QueueRow {
            tenant: tenant.into(),
            queue: queue.into(),
            depth: [3, 1, 0],
            ready_bytes: 42,
            consumers: 2,
            totals: Totals {
                published,
                dead_lettered: 1,
                ..Totals::default()
            },
        }
    }

    #[test]
    fn queue_families_hold_one_sample_per_hosted_queue() {
        let mut text = String::new();
        render_queues(&mut text, &[row("acme", "jobs", 7), row("acme", "mail", 0)]);
        assert!(text.contains("# TYPE sluice_published_messages_total counter\n"));
        assert!(
            text.contains(
                "sluice_queue_messages{tenant=\"acme\",queue=\"jobs\",state=\"ready\"} 3\n"
            )
        );
        assert!(
            text.contains("sluice_published_messages_total{tenant=\"acme\",queue=\"jobs\"} 7\n")
        );
        assert!(
            text.contains("sluice_published_messages_total{tenant=\"acme\",queue=\"mail\"} 0\n")
        );
        assert!(
            text.contains(
                "sluice_dead_lettered_messages_total{tenant=\"acme\",queue=\"mail\"} 1\n"
            )
        );
        assert_eq!(text.matches("# TYPE sluice_queue_messages ").count(), 1);

        // A queue no longer hosted has no series at all.
        let mut text = String::new();
        render_queues(&mut text, &[row("acme", "mail", 0)]);
        assert!(!text.contains("queue=\"jobs\""), "{text}");
        let mut text = String::new();
        render_queues(&mut text, &[]);
        assert!(text.is_empty());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

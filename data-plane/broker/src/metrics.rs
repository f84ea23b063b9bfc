//! Prometheus metrics at `/metrics`: per queue, the ready / unacked /
//! delayed gauges (read from the queue groups at scrape time, so they are
//! never stale) and counters of published, delivered, redelivered, acked,
//! nacked and dead-lettered messages per tenant and queue (rates are
//! `rate()` over them); per tenant, the publishes refused by the rate quota.
//! Streams: per partition hosted here the earliest / end offsets and log
//! bytes (gauges at scrape time), produced and fetched records and bytes
//! (counters, fetches per format), and per consumer group the lag of every
//! partition of its stream — reported by the broker coordinating the group
//! (partition 0's), which asks the brokers hosting the other partitions for
//! their bounds (node key, cached for `peers::BOUNDS_TTL`).

use std::sync::OnceLock;

use axum::extract::State;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use sluice_queue::Reply;

use crate::api::BrokerState;
use crate::queue::CommandOutcome;

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

/// Counts messages and bytes a queue stored.
pub fn published(tenant: &str, queue: &str, messages: u64, bytes: u64) {
    let labels = [("tenant", tenant.to_string()), ("queue", queue.to_string())];
    metrics::counter!("sluice_published_messages_total", &labels).increment(messages);
    metrics::counter!("sluice_published_bytes_total", &labels).increment(bytes);
}

/// Counts what a queue command did: deliveries (and redeliveries), acks,
/// dead letters. Publishes are counted by the publish path, which knows sizes.
pub fn command_applied(tenant: &str, queue: &str, outcome: &CommandOutcome) {
    let labels = [("tenant", tenant.to_string()), ("queue", queue.to_string())];
    match &outcome.result {
        Ok(Reply::Received { deliveries }) => {
            let redelivered = deliveries.iter().filter(|d| d.redelivered).count() as u64;
            metrics::counter!("sluice_delivered_messages_total", &labels)
                .increment(deliveries.len() as u64);
            metrics::counter!("sluice_redelivered_messages_total", &labels).increment(redelivered);
        }
        Ok(Reply::Acked { results }) => {
            let acked = results.iter().filter(|r| r.is_ok()).count() as u64;
            metrics::counter!("sluice_acked_messages_total", &labels).increment(acked);
        }
        Ok(Reply::Nacked { .. }) => {
            metrics::counter!("sluice_nacked_messages_total", &labels).increment(1);
        }
        _ => {}
    }
    if !outcome.dead_letters.is_empty() {
        metrics::counter!("sluice_dead_lettered_messages_total", &labels)
            .increment(outcome.dead_letters.len() as u64);
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
    let handle = handle();
    let topology = state.topology.current();
    for ((tenant_id, name), _) in topology.queues.iter() {
        let Some(group) = state.groups.queue(*tenant_id, name) else {
            continue;
        };
        let tenant = topology
            .tenants
            .get(tenant_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let stats = group.view().read(|q| q.stats());
        for (kind, value) in [
            ("ready", stats.ready),
            ("unacked", stats.unacked),
            ("delayed", stats.delayed),
        ] {
            let labels = [
                ("tenant", tenant.clone()),
                ("queue", name.clone()),
                ("state", kind.to_string()),
            ];
            metrics::gauge!("sluice_queue_messages", &labels).set(value as f64);
        }
        let labels = [("tenant", tenant.clone()), ("queue", name.clone())];
        metrics::gauge!("sluice_queue_ready_bytes", &labels).set(stats.ready_bytes as f64);
        metrics::gauge!("sluice_queue_consumers", &labels).set(stats.consumers.len() as f64);
    }
    render_streams(&state, &topology).await;
    handle.render()
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

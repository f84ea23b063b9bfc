//! Per-partition and per-group series of the streams hosted here: offsets
//! and log bytes from each hosted partition group, produced and fetched
//! counters from its [`PartitionTraffic`](crate::stream::traffic), and the
//! lag of every group coordinated here (partition 0's broker), for every
//! partition of its stream wherever hosted. A deleted stream's or group's
//! series go with it.

use std::collections::BTreeMap;

use sluice_stream::PartitionBounds;

use super::{family, sample};
use crate::cluster::placement;
use crate::node::Node;
use crate::stream::traffic::TrafficTotals;

/// One partition hosted here.
pub(super) struct PartitionRow {
    pub tenant: String,
    pub stream: String,
    pub partition: String,
    pub earliest: u64,
    pub end: u64,
    pub log_bytes: u64,
    pub traffic: TrafficTotals,
    /// 1 while its group is open, 0 while it sleeps.
    pub awake: u64,
}

/// One group's lag on one partition.
pub(super) struct LagRow {
    pub tenant: String,
    pub stream: String,
    pub group: String,
    pub partition: String,
    pub lag: u64,
}

/// The partitions hosted here and the lag of the groups coordinated here.
pub(super) async fn rows(state: &Node) -> (Vec<PartitionRow>, Vec<LagRow>) {
    let topology = state.topology.current();
    let (mut partitions, mut lags) = (Vec::new(), Vec::new());
    for ((tenant_id, name), stream) in topology.streams.iter() {
        let tenant = topology
            .tenants
            .get(tenant_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let mut bounds = BTreeMap::new();
        for partition in 0..stream.partitions.len() as u32 {
            // A sleeping partition reports its summary: scraping wakes nothing.
            let Some(hosted) = state.partitions.get(*tenant_id, name, partition) else {
                continue;
            };
            let Some(figures) = hosted.figures() else {
                continue;
            };
            let (earliest, end) = (figures.earliest_offset, figures.end_offset);
            partitions.push(PartitionRow {
                tenant: tenant.clone(),
                stream: name.clone(),
                partition: partition.to_string(),
                earliest,
                end,
                log_bytes: figures.log_bytes,
                traffic: hosted.traffic().totals(),
                awake: u64::from(hosted.is_awake()),
            });
            bounds.insert(partition, PartitionBounds { earliest, end });
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
        let group_lags = coordinator.coordinator(|c| {
            c.groups()
                .keys()
                .filter_map(|g| c.lag(g, &bounds).ok().map(|lag| (g.clone(), lag)))
                .collect::<Vec<_>>()
        });
        for (group, lag) in group_lags.unwrap_or_default() {
            for (partition, lag) in lag {
                lags.push(LagRow {
                    tenant: tenant.clone(),
                    stream: name.clone(),
                    group: group.clone(),
                    partition: partition.to_string(),
                    lag,
                });
            }
        }
    }
    (partitions, lags)
}

/// Adds to `bounds` those of the stream's partitions hosted elsewhere, one
/// (cached) call per hosting broker.
async fn remote_bounds(
    state: &Node,
    tenant_id: i64,
    stream: &str,
    partitions: usize,
    bounds: &mut BTreeMap<u32, PartitionBounds>,
) {
    let topology = state.topology.current();
    let hosts: std::collections::BTreeSet<String> = (0..partitions as u32)
        .filter(|p| !bounds.contains_key(p))
        .filter_map(|p| {
            placement::stream_host(&topology, &state.node_id, tenant_id, stream, Some(p))
        })
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

/// Appends the stream families, each family's samples under its `# TYPE`.
pub(super) fn render(out: &mut String, partitions: &[PartitionRow], lags: &[LagRow]) {
    type Field = fn(&PartitionRow) -> u64;
    let gauges: [(&str, &str, &str, Field); 6] = [
        (
            "sluice_stream_partition_awake",
            "gauge",
            "1 while the partition's group is open, 0 while it sleeps",
            |r| r.awake,
        ),
        (
            "sluice_stream_partition_earliest_offset",
            "gauge",
            "First offset still stored",
            |r| r.earliest,
        ),
        (
            "sluice_stream_partition_end_offset",
            "gauge",
            "Offset the next record gets",
            |r| r.end,
        ),
        (
            "sluice_stream_partition_log_bytes",
            "gauge",
            "Bytes of the partition's log",
            |r| r.log_bytes,
        ),
        (
            "sluice_stream_produced_records_total",
            "counter",
            "Records produced",
            |r| r.traffic.produced.records,
        ),
        (
            "sluice_stream_produced_bytes_total",
            "counter",
            "Value bytes produced",
            |r| r.traffic.produced.bytes,
        ),
    ];
    if !partitions.is_empty() {
        for (name, kind, help, field) in gauges {
            family(out, name, kind, help);
            for row in partitions {
                let labels = [
                    ("tenant", &*row.tenant),
                    ("stream", &*row.stream),
                    ("partition", &*row.partition),
                ];
                sample(out, name, &labels, field(row));
            }
        }
        type Fetched = fn(&TrafficTotals) -> [(&'static str, u64); 2];
        let fetched: [(&str, &str, Fetched); 2] = [
            (
                "sluice_stream_fetched_records_total",
                "Records fetched, per format",
                |t| {
                    [
                        ("json", t.fetched_json.records),
                        ("batches", t.fetched_batches.records),
                    ]
                },
            ),
            (
                "sluice_stream_fetched_bytes_total",
                "Bytes fetched: values for json, stored batches for batches",
                |t| {
                    [
                        ("json", t.fetched_json.bytes),
                        ("batches", t.fetched_batches.bytes),
                    ]
                },
            ),
        ];
        for (name, help, field) in fetched {
            family(out, name, "counter", help);
            for row in partitions {
                for (format, value) in field(&row.traffic) {
                    let labels = [
                        ("tenant", &*row.tenant),
                        ("stream", &*row.stream),
                        ("partition", &*row.partition),
                        ("format", format),
                    ];
                    sample(out, name, &labels, value);
                }
            }
        }
    }
    if !lags.is_empty() {
        let name = "sluice_stream_group_lag";
        family(
            out,
            name,
            "gauge",
            "Records between the group's commit and the end",
        );
        for row in lags {
            let labels = [
                ("tenant", &*row.tenant),
                ("stream", &*row.stream),
                ("group", &*row.group),
                ("partition", &*row.partition),
            ];
            sample(out, name, &labels, row.lag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::traffic::Counted;

    #[test]
    fn stream_families_hold_one_sample_per_hosted_partition_and_group() {
        let partition = PartitionRow {
            tenant: "acme".into(),
            stream: "events".into(),
            partition: "1".into(),
            earliest: 5,
            end: 9,
            log_bytes: 4096,
            awake: 1,
            traffic: TrafficTotals {
                produced: Counted {
                    records: 4,
                    bytes: 40,
                },
                fetched_batches: Counted {
                    records: 2,
                    bytes: 64,
                },
                ..TrafficTotals::default()
            },
        };
        let lag = LagRow {
            tenant: "acme".into(),
            stream: "events".into(),
            group: "billing".into(),
            partition: "1".into(),
            lag: 3,
        };
        let mut text = String::new();
        render(&mut text, &[partition], &[lag]);
        let at = "tenant=\"acme\",stream=\"events\",partition=\"1\"";
        for line in [
            format!("sluice_stream_partition_end_offset{{{at}}} 9\n"),
            format!("sluice_stream_produced_records_total{{{at}}} 4\n"),
            format!("sluice_stream_fetched_bytes_total{{{at},format=\"batches\"}} 64\n"),
            format!("sluice_stream_fetched_records_total{{{at},format=\"json\"}} 0\n"),
            "sluice_stream_group_lag{tenant=\"acme\",stream=\"events\",group=\"billing\",partition=\"1\"} 3\n".to_string(),
        ] {
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert_eq!(
            text.matches("# TYPE sluice_stream_fetched_bytes_total ")
                .count(),
            1
        );

        // Nothing hosted, nothing shown: a deleted stream leaves no series.
        let mut text = String::new();
        render(&mut text, &[], &[]);
        assert!(text.is_empty());
    }
}

//! A broker's registration and heartbeats with the control plane
//! (`PUT /internal/v1/nodes/{id}`, `POST /internal/v1/nodes/{id}/heartbeat`).
//!
//! The requests refuse unknown fields, as the control plane has always read
//! them; the heartbeat answer is read leniently by brokers: its counts are
//! optional, so a broker still runs against a control plane that predates them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterNode {
    /// Base URL of the broker's data API, e.g. `http://127.0.0.1:9090`.
    pub data_url: String,
    #[serde(default = "default_zone")]
    pub zone: String,
    /// The most group replicas (queues and stream partitions) the broker
    /// hosts; the control plane places no more on it. Absent: no limit.
    #[serde(default)]
    pub max_groups: Option<u64>,
    /// Free bytes the broker keeps on its data disk: while it has no more
    /// than this free, no group is placed on it.
    #[serde(default)]
    pub disk_reserve_bytes: u64,
}

fn default_zone() -> String {
    "default".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The topology version the node has converged to.
    pub applied_version: i64,
    /// Bytes this node stores per tenant, keyed by tenant id (as a JSON
    /// string, e.g. `{"7": 1048576}`; each count at most 2^63 − 1): its
    /// whole current measurement, which replaces the node's previous report.
    /// Omitted means an empty report — the node stores nothing for any
    /// tenant — so a broker that predates storage reporting counts for
    /// nothing rather than for a stale figure.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, u64>))]
    pub storage_bytes: BTreeMap<i64, u64>,
    /// Free bytes on the node's data disk now (absent: not measured).
    #[serde(default)]
    pub disk_free_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatAck {
    /// The current topology version.
    pub version: i64,
    // Optional when read: absent from a control plane that predates the count.
    /// How many brokers are live (heartbeat within the last 15 s), this one
    /// included: brokers divide tenants' publish rate quotas by it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = i64, required = true))]
    pub live_nodes: Option<u64>,
    // Optional when read: absent from a control plane that does not sum them.
    /// Bytes stored per tenant across the cluster, keyed by tenant id (as a
    /// JSON string): the sum of the latest reports of the live brokers, this
    /// one's report included. Tenants no live broker reports are absent.
    /// Brokers compare it with each tenant's `max_storage_bytes`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, i64>, required = true))]
    pub storage_used: Option<BTreeMap<i64, u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_answer_without_the_live_count_still_reads() {
        let ack: HeartbeatAck = serde_json::from_str(r#"{"version": 4}"#).expect("old answer");
        assert_eq!((ack.version, ack.live_nodes), (4, None));
        let ack: HeartbeatAck =
            serde_json::from_str(r#"{"version": 4, "live_nodes": 3}"#).expect("answer");
        assert_eq!(ack.live_nodes, Some(3));
    }

    #[test]
    fn tenant_ids_travel_as_object_keys() {
        let beat = Heartbeat {
            applied_version: 9,
            storage_bytes: BTreeMap::from([(7, 1 << 20)]),
            disk_free_bytes: None,
        };
        let wire = serde_json::to_value(&beat).expect("json");
        assert_eq!(
            wire,
            serde_json::json!({"applied_version": 9, "storage_bytes": {"7": 1048576}, "disk_free_bytes": null})
        );
        assert_eq!(
            serde_json::from_value::<Heartbeat>(wire).expect("read"),
            beat
        );
        let omitted: Heartbeat =
            serde_json::from_str(r#"{"applied_version": 1}"#).expect("no report");
        assert!(omitted.storage_bytes.is_empty());
    }
}

//! The broker's picture of the topology, rebuilt from each feed snapshot and
//! shared read-only (`Arc`) with request handlers. Only what the broker
//! interprets is typed; the rest of a spec is kept as JSON for the component
//! that owns it (routing, queue state machine, streams).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `GET /internal/v1/feed` as the control plane sends it. Unknown fields are
/// ignored so a newer control plane can add to the feed.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedSnapshot {
    pub version: i64,
    pub tenants: Vec<FeedTenant>,
    pub api_keys: Vec<KeyVerifier>,
    pub exchanges: Vec<FeedNamed>,
    pub queues: Vec<FeedQueue>,
    pub bindings: Vec<FeedBinding>,
    pub streams: Vec<FeedStream>,
    #[serde(default)]
    pub nodes: Vec<FeedNode>,
}

/// A broker, so requests for a group hosted elsewhere can be forwarded.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedNode {
    pub id: String,
    pub data_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeedTenant {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub quotas: TenantQuotas,
}

/// The quotas brokers enforce (counts are the control plane's).
#[derive(Debug, Clone, Deserialize)]
pub struct TenantQuotas {
    pub max_message_bytes: i64,
    pub publish_messages_per_second: i64,
    pub publish_bytes_per_second: i64,
    pub max_storage_bytes: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyVerifier {
    pub id: String,
    pub tenant_id: i64,
    pub scopes: Vec<String>,
    /// Hex SHA-256 of the key's secret.
    pub secret_sha256: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeedNamed {
    pub tenant_id: i64,
    pub name: String,
    pub spec: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Placement {
    pub group_id: String,
    pub replicas: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeedQueue {
    pub tenant_id: i64,
    pub name: String,
    pub spec: serde_json::Value,
    pub placement: Placement,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeedBinding {
    pub tenant_id: i64,
    pub id: String,
    pub spec: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeedStream {
    pub tenant_id: i64,
    pub name: String,
    pub spec: serde_json::Value,
    pub partitions: Vec<Placement>,
}

/// The snapshot indexed for the lookups requests make.
#[derive(Debug)]
pub struct Topology {
    /// -1 until the first snapshot arrives (a fresh control plane is at 0).
    pub version: i64,
    pub tenants: HashMap<i64, FeedTenant>,
    pub keys: HashMap<String, KeyVerifier>,
    pub queues: HashMap<(i64, String), FeedQueue>,
    pub exchanges: HashMap<i64, Vec<FeedNamed>>,
    pub bindings: HashMap<i64, Vec<FeedBinding>>,
    pub streams: HashMap<(i64, String), FeedStream>,
    /// Data URL of every broker, by node id.
    pub nodes: HashMap<String, String>,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            version: -1,
            tenants: HashMap::new(),
            keys: HashMap::new(),
            queues: HashMap::new(),
            exchanges: HashMap::new(),
            bindings: HashMap::new(),
            streams: HashMap::new(),
            nodes: HashMap::new(),
        }
    }
}

impl Topology {
    pub fn from_snapshot(snapshot: FeedSnapshot) -> Topology {
        let mut topology = Topology {
            version: snapshot.version,
            ..Topology::default()
        };
        topology.tenants = snapshot.tenants.into_iter().map(|t| (t.id, t)).collect();
        topology.keys = snapshot
            .api_keys
            .into_iter()
            .map(|k| (k.id.clone(), k))
            .collect();
        topology.queues = snapshot
            .queues
            .into_iter()
            .map(|q| ((q.tenant_id, q.name.clone()), q))
            .collect();
        topology.streams = snapshot
            .streams
            .into_iter()
            .map(|s| ((s.tenant_id, s.name.clone()), s))
            .collect();
        topology.nodes = snapshot
            .nodes
            .into_iter()
            .map(|n| (n.id, n.data_url))
            .collect();
        for exchange in snapshot.exchanges {
            topology
                .exchanges
                .entry(exchange.tenant_id)
                .or_default()
                .push(exchange);
        }
        for binding in snapshot.bindings {
            topology
                .bindings
                .entry(binding.tenant_id)
                .or_default()
                .push(binding);
        }
        topology
    }

    /// The groups this node hosts a replica of.
    pub fn groups_on(&self, node_id: &str) -> Vec<&str> {
        let queues = self.queues.values().map(|q| &q.placement);
        let partitions = self.streams.values().flat_map(|s| s.partitions.iter());
        queues
            .chain(partitions)
            .filter(|p| p.replicas.iter().any(|r| r == node_id))
            .map(|p| p.group_id.as_str())
            .collect()
    }
}

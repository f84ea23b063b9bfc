//! The broker's picture of the topology, rebuilt from each feed snapshot and
//! shared read-only (`Arc`) with request handlers. The snapshot's parts are
//! `sluice-protocol`'s types, settings included: the queue, stream, exchange
//! and binding specs are the domain crates' own types, read when the
//! snapshot was (`FeedSnapshot::from_json`), so a spec this broker cannot
//! read never gets this far.

use std::collections::HashMap;

pub use sluice_protocol::feed::{
    FeedBinding, FeedExchange, FeedQueue, FeedSnapshot, FeedStream, FeedTenant, KeyVerifier,
};
pub use sluice_protocol::placement::Placement;

/// The snapshot indexed for the lookups requests make.
#[derive(Debug)]
pub struct Topology {
    /// -1 until the first snapshot arrives (a fresh control plane is at 0).
    pub version: i64,
    pub tenants: HashMap<i64, FeedTenant>,
    pub keys: HashMap<String, KeyVerifier>,
    pub queues: HashMap<(i64, String), FeedQueue>,
    pub exchanges: HashMap<i64, Vec<FeedExchange>>,
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
            .filter(|p| p.is_on(node_id))
            .map(|p| p.group_id.as_str())
            .collect()
    }
}

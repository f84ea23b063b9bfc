//! The broker's picture of the topology, rebuilt from each feed snapshot and
//! shared read-only (`Arc`) with request handlers. Its maps are persistent
//! (`imbl`): the next version shares every entry the changes did not touch,
//! so a declare costs O(log n) here whatever the number of queues. The snapshot's parts are
//! `sluice-protocol`'s types, settings included: the queue, stream, exchange
//! and binding specs are the domain crates' own types, read when the
//! snapshot was (`FeedSnapshot::from_json`), so a spec this broker cannot
//! read never gets this far.

use std::sync::Arc;

use imbl::{HashMap, OrdMap};

use super::changes::RecentChanges;

pub use sluice_protocol::feed::{
    FeedBinding, FeedExchange, FeedQueue, FeedSnapshot, FeedStream, FeedTenant, KeyVerifier,
};
pub use sluice_protocol::placement::Placement;

/// The snapshot indexed for the lookups requests make; a new one per
/// version, from a snapshot or from the last one and the changes since it
/// ([`super::changes`]).
#[derive(Debug, Clone)]
pub struct Topology {
    /// -1 until the first snapshot arrives (a fresh control plane is at 0).
    pub version: i64,
    pub tenants: HashMap<i64, Arc<FeedTenant>>,
    pub keys: HashMap<String, Arc<KeyVerifier>>,
    /// Ordered, so one tenant's queues are a range (its default exchange).
    pub queues: OrdMap<(i64, String), Arc<FeedQueue>>,
    pub exchanges: HashMap<i64, Arc<Vec<FeedExchange>>>,
    pub bindings: HashMap<i64, Arc<Vec<FeedBinding>>>,
    pub streams: HashMap<(i64, String), Arc<FeedStream>>,
    /// Data URL of every broker, by node id.
    pub nodes: HashMap<String, String>,
    /// What the last updates changed, for the group hosts.
    pub recent: RecentChanges,
    /// Per tenant, the version at which its routing (exchanges, bindings,
    /// the set of its queues) last changed, when after the snapshot: its
    /// compiled router is rebuilt only then, not at every declare of
    /// another tenant.
    pub routing_changed: HashMap<i64, i64>,
    /// The version of the snapshot this topology grew from.
    pub snapshot_version: i64,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            version: -1,
            tenants: HashMap::new(),
            keys: HashMap::new(),
            queues: OrdMap::new(),
            exchanges: HashMap::new(),
            bindings: HashMap::new(),
            streams: HashMap::new(),
            nodes: HashMap::new(),
            recent: RecentChanges::default(),
            routing_changed: HashMap::new(),
            snapshot_version: -1,
        }
    }
}

impl Topology {
    pub fn from_snapshot(snapshot: FeedSnapshot) -> Topology {
        let mut topology = Topology {
            version: snapshot.version,
            snapshot_version: snapshot.version,
            ..Topology::default()
        };
        topology.tenants = snapshot
            .tenants
            .into_iter()
            .map(|t| (t.id, Arc::new(t)))
            .collect();
        topology.keys = snapshot
            .api_keys
            .into_iter()
            .map(|k| (k.id.clone(), Arc::new(k)))
            .collect();
        topology.queues = snapshot
            .queues
            .into_iter()
            .map(|q| ((q.tenant_id, q.name.clone()), Arc::new(q)))
            .collect();
        topology.streams = snapshot
            .streams
            .into_iter()
            .map(|s| ((s.tenant_id, s.name.clone()), Arc::new(s)))
            .collect();
        topology.nodes = snapshot
            .nodes
            .into_iter()
            .map(|n| (n.id, n.data_url))
            .collect();
        let mut exchanges: std::collections::HashMap<i64, Vec<FeedExchange>> = Default::default();
        for exchange in snapshot.exchanges {
            exchanges
                .entry(exchange.tenant_id)
                .or_default()
                .push(exchange);
        }
        topology.exchanges = exchanges
            .into_iter()
            .map(|(t, x)| (t, Arc::new(x)))
            .collect();
        let mut bindings: std::collections::HashMap<i64, Vec<FeedBinding>> = Default::default();
        for binding in snapshot.bindings {
            bindings.entry(binding.tenant_id).or_default().push(binding);
        }
        topology.bindings = bindings
            .into_iter()
            .map(|(t, b)| (t, Arc::new(b)))
            .collect();
        topology
    }

    /// The version the tenant's routing last changed at (see `routing_changed`).
    pub fn routing_version(&self, tenant_id: i64) -> i64 {
        self.routing_changed
            .get(&tenant_id)
            .copied()
            .unwrap_or(self.snapshot_version)
    }

    /// The tenant's queues, in name order.
    pub fn tenant_queues(&self, tenant_id: i64) -> impl Iterator<Item = &FeedQueue> {
        self.queues
            .range((tenant_id, String::new())..)
            .take_while(move |((tenant, _), _)| *tenant == tenant_id)
            .map(|(_, queue)| &**queue)
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

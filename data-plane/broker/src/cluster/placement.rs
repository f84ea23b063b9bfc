//! Which broker serves a group that is not hosted here: the data URL of its
//! first replica (the preferred leader), from the topology's placements and
//! node list.

use crate::control::topology::{Placement, Topology};

/// The data URL of the broker serving the tenant's `queue`, unless this
/// node (`node_id`) is one of its replicas (it is served here, or will be
/// once it opened).
pub fn queue_host(
    topology: &Topology,
    node_id: &str,
    tenant_id: i64,
    queue: &str,
) -> Option<String> {
    let placed = topology.queues.get(&(tenant_id, queue.to_string()))?;
    if placed.placement.replicas.iter().any(|r| r == node_id) {
        return None;
    }
    let leader = placed.placement.replicas.first()?;
    topology.nodes.get(leader).cloned()
}

/// The data URL of the broker serving a stream request that is not served
/// here: for one partition, the node of its first replica; for the stream
/// as a whole (a produce), the node of partition 0 when this node hosts
/// none of the stream's partitions.
pub fn stream_host(
    topology: &Topology,
    node_id: &str,
    tenant_id: i64,
    stream: &str,
    partition: Option<u32>,
) -> Option<String> {
    let placed = topology.streams.get(&(tenant_id, stream.to_string()))?;
    let placements: Vec<&Placement> = match partition {
        Some(p) => vec![placed.partitions.get(p as usize)?],
        None => placed.partitions.iter().collect(),
    };
    if placements
        .iter()
        .any(|p| p.replicas.iter().any(|r| r == node_id))
    {
        return None; // ours (or partly ours: the local handler answers)
    }
    let leader = placements.first()?.replicas.first()?;
    topology.nodes.get(leader).cloned()
}

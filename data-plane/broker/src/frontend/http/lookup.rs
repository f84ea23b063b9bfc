//! Resolving the caller's names to what this broker hosts: a missing name
//! is 404 (another tenant's resource included: existence does not leak), a
//! name the topology holds but this broker has not opened yet is 503.

use std::sync::Arc;

use crate::admission::auth::Caller;
use crate::control::topology::FeedStream;
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;
use crate::queue::host::{HostedQueue, QueueInUse};
use crate::stream::host::PartitionInUse;

/// The caller's queue `name`, hosted here (woken if it slept; it stays
/// awake while the answer lives).
pub async fn queue_group(state: &Node, caller: &Caller, name: &str) -> BrokerResult<QueueInUse> {
    state
        .queues
        .serving(&state.topology.current(), caller.tenant_id, name)
        .await
}

/// The caller's queue `name`, hosted here, without waking it.
pub fn hosted_queue(state: &Node, caller: &Caller, name: &str) -> BrokerResult<Arc<HostedQueue>> {
    state
        .queues
        .hosted(&state.topology.current(), caller.tenant_id, name)
}

/// The caller's stream `name`, as the topology has it.
pub fn stream_of(state: &Node, caller: &Caller, name: &str) -> BrokerResult<FeedStream> {
    state
        .topology
        .current()
        .streams
        .get(&(caller.tenant_id, name.to_string()))
        .map(|stream| FeedStream::clone(stream))
        .ok_or_else(|| BrokerError::NotFound {
            kind: "stream",
            name: name.to_string(),
        })
}

/// Partition `partition` of the caller's `stream`, hosted here (woken if
/// it slept; it stays awake while the answer lives).
pub async fn partition_group(
    state: &Node,
    caller: &Caller,
    stream: &str,
    partition: u32,
) -> BrokerResult<PartitionInUse> {
    state
        .partitions
        .serving(caller.tenant_id, stream, partition)
        .await
}

//! openraft glue shared by every group this broker hosts, whatever it
//! replicates: the group itself ([`group::RaftGroup`]: entries are record
//! batches of the segment log), the state machine adapter, the Raft timing,
//! node ids, the network groups talk to their peers through, and the slot
//! a hosted group lives in, awake or asleep ([`slot`]), and the sweeper that
//! puts groups to sleep and wakes them for their timers ([`sweeper`]). Each
//! kind of group (queue, stream partition) declares its own type config
//! next to its state machine.

pub mod group;
mod network;
pub mod sleep_record;
pub mod slot;
pub mod state_machine;
pub mod sweeper;

use std::sync::Arc;

use openraft::SnapshotPolicy;
use sha2::{Digest, Sha256};

pub use network::{SingleVoterNetwork, network_for};

/// Raft timing for a group of `voters`. A single voter has nobody to send
/// heartbeats to and nobody to lose an election to, so it runs no timer at
/// all (`enable_tick` off): an idle awake group costs no wake-ups, where a
/// 100 ms heartbeat tick made a thousand awake idle queues most of a core.
/// It elects itself when opened ([`group::RaftGroup`]). Groups of several
/// voters tick, with a short election timeout.
///
/// openraft never snapshots or purges on its own: message bodies and stream
/// records live in the log, so [`group::RaftGroup::compact`] snapshots
/// and purges only below what the state still points into
/// (`max_in_snapshot_log_to_keep` unbounded keeps openraft's automatic purge
/// from ever reaching a live body).
pub fn group_config(voters: usize) -> anyhow::Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: "sluice-queue".into(),
        enable_tick: voters > 1,
        heartbeat_interval: 100,
        election_timeout_min: 250,
        election_timeout_max: 500,
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

/// The Raft node id of a broker: a stable hash of its node id string, the same
/// on every broker, so placements (`replicas` = node ids) map to Raft members.
pub fn raft_node_id(node_id: &str) -> u64 {
    let digest = Sha256::digest(node_id.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

/// The command clock: the proposer's wall-clock milliseconds, stamped on
/// every command so that every replica applies it at the same time.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether a group id is safe as the name of the group's directory.
pub fn safe_dir_name(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Deletes a removed group's directory (already absent is fine); false
/// when it could not be deleted (the next full convergence tries again).
pub async fn remove_group_dir(dir: &std::path::Path) -> bool {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => true,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "deleting a group directory failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(raft_node_id("n1"), raft_node_id("n1"));
        assert_ne!(raft_node_id("n1"), raft_node_id("n2"));
    }
}

//! One Raft group on this broker, whatever it replicates: the segment log
//! under `dir/log`, snapshots under `dir/snapshots`, the openraft instance,
//! and the operations queue and stream groups share — start (initializing a
//! new group with its replicas), propose, compact, shut down.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{BasicNode, Raft, RaftTypeConfig, ServerState};
use sluice_storage::raft::{BatchEntry, Records, SegmentLogStore};
use sluice_storage::{LogConfig, SegmentLog};

use super::state_machine::{RecordsEntry, Replicated, ReplicatedStateMachine, View};
use super::{group_config, network_for, raft_node_id};
use crate::error::BrokerError;

/// How long starting a group waits for it to elect a leader, and compaction
/// for its snapshot.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// The Raft type configs of Sluice groups: entries are record batches of the
/// segment log, nodes are brokers.
pub trait GroupTypeConfig:
    RaftTypeConfig<D = Records, NodeId = u64, Node = BasicNode, Entry: RecordsEntry + BatchEntry>
{
}

impl<C> GroupTypeConfig for C where
    C: RaftTypeConfig<
            D = Records,
            NodeId = u64,
            Node = BasicNode,
            Entry: RecordsEntry + BatchEntry,
        >
{
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("this broker is not the group's leader (leader: {0:?})")]
    NotLeader(Option<u64>),
    #[error("the group is unavailable: {0}")]
    Unavailable(String),
    #[error("group storage failed: {0}")]
    Storage(String),
}

/// A started Raft group replicating `M`.
pub struct RaftGroup<C: GroupTypeConfig, M: Replicated<Outcome = C::R>> {
    raft: Raft<C, ReplicatedStateMachine<C, M>>,
    view: View<C, M>,
    log: SegmentLog,
    node: u64,
}

impl<C: GroupTypeConfig, M: Replicated<Outcome = C::R>> RaftGroup<C, M> {
    /// Opens (or creates) the group in `dir` on the broker `node_id`,
    /// initializes a new one with its `replicas` and waits for a leader.
    /// `initial` is the state of a group without a snapshot.
    pub async fn start(
        dir: &Path,
        node_id: &str,
        replicas: &[String],
        segment_bytes: u64,
        initial: M,
    ) -> anyhow::Result<Self> {
        let config = LogConfig {
            segment_bytes,
            ..LogConfig::default()
        };
        let store = SegmentLogStore::<C>::open(dir.join("log"), config).await?;
        let log = store.log().clone();
        let machine = ReplicatedStateMachine::<C, M>::open(&dir.join("snapshots"), initial)?;
        let view = machine.view();
        let node = raft_node_id(node_id);
        let config = group_config(replicas.len())?;
        let raft = Raft::new(node, config, network_for(replicas), store, machine).await?;
        if !raft.is_initialized().await? {
            let members: BTreeMap<u64, BasicNode> = replicas
                .iter()
                .map(|r| (raft_node_id(r), BasicNode::default()))
                .collect();
            raft.initialize(members).await?;
        }
        if replicas.len() == 1 {
            // A single voter has no timer to call an election with (see
            // `group_config`), and a sleeping queue's first request should
            // not wait one out anyway: it elects itself now.
            raft.trigger().elect(false).await?;
        }
        raft.wait(Some(LEADER_WAIT))
            .state(ServerState::Leader, "group leader")
            .await?;
        Ok(RaftGroup {
            raft,
            view,
            log,
            node,
        })
    }

    pub fn view(&self) -> &View<C, M> {
        &self.view
    }

    pub fn log(&self) -> &SegmentLog {
        &self.log
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().current_leader == Some(self.node)
    }

    /// Proposes an entry and answers what applying it produced, once it is
    /// committed and applied.
    pub async fn write(&self, entry: Records) -> Result<C::R, GroupError> {
        match self.raft.client_write(entry).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(GroupError::NotLeader(forward.leader_id))
            }
            Err(other) => Err(GroupError::Unavailable(other.to_string())),
        }
    }

    /// Snapshots the state (if entries were applied since the last
    /// snapshot) and asks openraft to purge the log below `keep_from`, the
    /// first index the state still points into, and never past the
    /// snapshot. Returns the last purged index, or `None` when nothing is
    /// left to purge.
    ///
    /// openraft's own purging is off (`group_config`): it would purge all a
    /// snapshot covers, and messages and records live in the log.
    pub async fn compact(&self, keep_from: impl Fn(&M) -> u64) -> Result<Option<u64>, GroupError> {
        let applied = self.view.applied_index();
        if self.view.snapshot_index() < applied {
            self.raft
                .trigger()
                .snapshot()
                .await
                .map_err(|e| GroupError::Unavailable(e.to_string()))?;
            let deadline = tokio::time::Instant::now() + LEADER_WAIT;
            while self.view.snapshot_index() < applied {
                if tokio::time::Instant::now() > deadline {
                    return Err(GroupError::Unavailable(
                        "the snapshot was not built in time".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let keep_from = self.view.read(&keep_from);
        let upto = self.view.snapshot_index().min(keep_from.saturating_sub(1));
        if upto < self.log.start_offset() {
            return Ok(None);
        }
        self.raft
            .trigger()
            .purge_log(upto)
            .await
            .map_err(|e| GroupError::Unavailable(e.to_string()))?;
        Ok(Some(upto))
    }

    /// Stops the Raft group (the log is closed once dropped).
    pub async fn shutdown(&self) -> Result<(), String> {
        self.raft.shutdown().await.map_err(|e| e.to_string())
    }
}

impl From<GroupError> for BrokerError {
    fn from(err: GroupError) -> Self {
        match err {
            GroupError::NotLeader(_) | GroupError::Unavailable(_) => {
                BrokerError::Unavailable(err.to_string())
            }
            GroupError::Storage(_) => BrokerError::Internal(anyhow::Error::new(err)),
        }
    }
}

//! One stream partition on this broker: opens the segment log and the
//! state machine under `data_dir/streams/<group_id>/`, starts (or restarts)
//! the openraft group, produces batches and reads records back from the log
//! by the log index `PartitionState::locate` returns.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{BasicNode, ServerState};
use sluice_storage::raft::SegmentLogStore;
use sluice_storage::{LogConfig, Record, SegmentLog};
use sluice_stream::{Command, GroupCommand, GroupCoordinator, TimedCommand};
use tokio_util::sync::CancellationToken;

use super::codec;
use super::state_machine::{PartitionOutcome, PartitionStateMachine, PartitionView};
use super::timer::{self, Retention};
use crate::queue::GroupError;
use crate::queue::group::now_ms;
use crate::raft::{PartitionRaft, StreamConfig, group_config, network_for, raft_node_id};

/// How long opening a group waits for it to elect a leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// What the topology says about a partition hosted here.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    pub group_id: String,
    pub tenant_id: i64,
    pub stream: String,
    pub partition: u32,
    /// The stream's partition count (partition 0 coordinates its consumer groups).
    pub partitions: u32,
    /// Broker node ids of the replicas.
    pub replicas: Vec<String>,
    /// The stream's retention settings when the partition was opened.
    pub retention: Retention,
}

/// A record read back, with its offset.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub offset: u64,
    pub record: Record,
}

pub struct PartitionGroup {
    pub spec: PartitionSpec,
    raft: PartitionRaft<PartitionStateMachine>,
    view: PartitionView,
    log: SegmentLog,
    /// The current retention settings (the stream's spec may change).
    retention: Mutex<Retention>,
    stop: CancellationToken,
}

impl PartitionGroup {
    /// Opens (or creates) the partition in `dir`, initializes a new one with
    /// its replicas, waits for a leader and starts its timer task.
    pub async fn open(
        dir: &Path,
        node_id: &str,
        spec: PartitionSpec,
    ) -> anyhow::Result<Arc<PartitionGroup>> {
        let config = LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            ..LogConfig::default()
        };
        let store = SegmentLogStore::<StreamConfig>::open(dir.join("log"), config).await?;
        let log = store.log().clone();
        let coordinator = (spec.partition == 0).then(|| GroupCoordinator::new(spec.partitions));
        let machine = PartitionStateMachine::open(&dir.join("snapshots"), coordinator)?;
        let view = machine.view();
        let node = raft_node_id(node_id);
        let raft = PartitionRaft::new(
            node,
            group_config()?,
            network_for(&spec.replicas),
            store,
            machine,
        )
        .await?;
        if !raft.is_initialized().await? {
            let members: BTreeMap<u64, BasicNode> = spec
                .replicas
                .iter()
                .map(|r| (raft_node_id(r), BasicNode::default()))
                .collect();
            raft.initialize(members).await?;
        }
        raft.wait(Some(LEADER_WAIT))
            .state(ServerState::Leader, "partition group leader")
            .await?;
        let group = Arc::new(PartitionGroup {
            retention: Mutex::new(spec.retention),
            spec,
            raft,
            view,
            log,
            stop: CancellationToken::new(),
        });
        tokio::spawn(timer::run(group.clone(), group.stop.clone()));
        Ok(group)
    }

    /// The stream's current retention settings.
    pub fn retention(&self) -> Retention {
        *self.retention.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the stream's new retention settings (its spec changed).
    pub fn set_retention(&self, retention: Retention) {
        *self.retention.lock().unwrap_or_else(|e| e.into_inner()) = retention;
    }

    pub(super) fn log(&self) -> &SegmentLog {
        &self.log
    }

    pub fn view(&self) -> &PartitionView {
        &self.view
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics().borrow_watched().clone();
        metrics.current_leader == Some(metrics.id)
    }

    /// Proposes `command` with the produced `records`, stamped with this
    /// node's clock, and answers once it is committed and applied.
    pub async fn propose(
        &self,
        command: Command,
        records: Vec<Record>,
    ) -> Result<PartitionOutcome, GroupError> {
        let command = TimedCommand::new(now_ms(), command);
        let entry = codec::encode_entry(&command, records)
            .map_err(|e| GroupError::Storage(e.to_string()))?;
        self.write(entry).await
    }

    /// Proposes a consumer-group command (partition 0 only).
    pub async fn propose_group(
        &self,
        command: GroupCommand,
    ) -> Result<PartitionOutcome, GroupError> {
        let command = TimedCommand::new(now_ms(), command);
        let entry =
            codec::encode_group_entry(&command).map_err(|e| GroupError::Storage(e.to_string()))?;
        self.write(entry).await
    }

    async fn write(
        &self,
        entry: sluice_storage::raft::Records,
    ) -> Result<PartitionOutcome, GroupError> {
        match self.raft.client_write(entry).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(GroupError::NotLeader(forward.leader_id))
            }
            Err(other) => Err(GroupError::Unavailable(other.to_string())),
        }
    }

    /// The first log index at or after which a batch's newest timestamp is
    /// `>= timestamp_ms` (the storage's time index), if any.
    pub async fn log_index_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<u64>, GroupError> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.offset_for_timestamp(timestamp_ms))
            .await
            .map_err(|e| GroupError::Storage(e.to_string()))?
            .map_err(|e| GroupError::Storage(e.to_string()))
    }

    /// Up to `max_records` records from `offset` (at least one when any
    /// exists, then about `max_bytes` of values), read batch by batch from
    /// the log. Entries holding no live batch (retries answered from the
    /// producer state, retention, membership) are skipped.
    pub async fn read(
        &self,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRecord>, GroupError> {
        let Some((log_index, _)) = self.view.read(|p| p.locate(offset)) else {
            return Ok(Vec::new());
        };
        let log = self.log.clone();
        let batches = tokio::task::spawn_blocking(move || log.read(log_index, max_bytes))
            .await
            .map_err(|e| GroupError::Storage(e.to_string()))?
            .map_err(|e| GroupError::Storage(e.to_string()))?;
        let mut out = Vec::new();
        let mut next = offset;
        let mut bytes = 0usize;
        for batch in batches {
            let Some((index, slot)) = self.view.read(|p| p.locate(next)) else {
                break;
            };
            if batch.offset < index {
                continue;
            }
            if batch.offset > index {
                break; // the read started past it (cannot happen) — stop here
            }
            for record in codec::produced(batch.records)
                .into_iter()
                .skip(slot as usize)
            {
                if out.len() >= max_records || (!out.is_empty() && bytes >= max_bytes) {
                    return Ok(out);
                }
                bytes += record.value.len();
                out.push(StoredRecord {
                    offset: next,
                    record,
                });
                next += 1;
            }
        }
        Ok(out)
    }

    /// Stops the timer and the Raft group (the log is closed once dropped).
    pub async fn close(&self) {
        self.stop.cancel();
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(group = %self.spec.group_id, error = %err, "partition shutdown failed");
        }
    }
}

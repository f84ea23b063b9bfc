//! Commands: what the broker proposes through Raft. They are written to the
//! log, so they are serde types, and they carry the proposer's clock because
//! the state machines never read one.
//!
//! A partition's log carries [`Command`]s; the log of the partition that
//! hosts the stream's group coordinator (partition 0) also carries
//! [`GroupCommand`]s — the Raft glue wraps both in its own entry type and
//! hands each to its state machine.
//!
//! Maps keyed by partition number are written as `[partition, value]` pairs
//! (see `partition_map`): inside these tagged enums serde could not read
//! them back from JSON objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::group::{AssignmentStrategy, MemberId, PartitionBounds, SeekTarget};
use crate::{GroupId, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence};

/// A command with the time at which the leader proposed it. Replicas apply
/// the same `now_ms`, so session timeouts expire identically everywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedCommand<C> {
    pub now_ms: u64,
    pub command: C,
}

impl<C> TimedCommand<C> {
    pub fn new(now_ms: u64, command: C) -> Self {
        Self { now_ms, command }
    }
}

/// Every state change of a stream partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Command {
    /// Append a batch of `record_count` records (their bodies are the log
    /// entry's batch). With `producer`, the batch is idempotent.
    Produce {
        record_count: u32,
        #[serde(default)]
        producer: Option<ProducerBatch>,
    },
    /// Move the earliest offset forward to `earliest_offset` (computed by the
    /// broker from the time / bytes retention policy). Never moves back.
    Retain { earliest_offset: Offset },
    /// Forget the idempotence state of producers that have produced nothing
    /// for more than `idle_ms` (Kafka's `producer.id.expiration.ms`); a
    /// forgotten producer id starts again at sequence 0.
    ExpireProducers { idle_ms: u64 },
}

/// The idempotence header of a produced batch: Kafka's producer id, epoch
/// and the sequence number of the batch's first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub producer_id: ProducerId,
    pub epoch: ProducerEpoch,
    pub base_sequence: Sequence,
}

/// Every state change of a stream's consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GroupCommand {
    /// Join `group` (a new member when `member_id` is `None`), or rejoin with
    /// a known `member_id` to learn the current generation and assignment.
    Join {
        group: GroupId,
        #[serde(default)]
        member_id: Option<MemberId>,
        client_id: String,
        session_timeout_ms: u64,
        strategy: AssignmentStrategy,
    },
    /// Keep a member's session alive, in the generation it knows.
    Heartbeat {
        group: GroupId,
        member_id: MemberId,
        generation: u64,
    },
    /// A member leaves; its partitions go to the others.
    Leave { group: GroupId, member_id: MemberId },
    /// Commit the next offsets to consume, all or nothing; only the current
    /// owner of each partition, in the current generation.
    Commit {
        group: GroupId,
        member_id: MemberId,
        generation: u64,
        #[serde(with = "crate::partition_map")]
        offsets: BTreeMap<PartitionId, Offset>,
    },
    /// Move a whole group's committed offsets. `bounds` are every
    /// partition's earliest and end offsets as the broker saw them when it
    /// proposed the seek. Without `force` the group must have no members;
    /// `force` (admin scope only) also fences the members' in-flight commits.
    Seek {
        group: GroupId,
        target: SeekTarget,
        #[serde(with = "crate::partition_map")]
        bounds: BTreeMap<PartitionId, PartitionBounds>,
        #[serde(default)]
        force: bool,
    },
    /// Forget an empty group and its committed offsets.
    DeleteGroup { group: GroupId },
    /// The stream now has `partitions` partitions: every group rebalances.
    SetPartitionCount { partitions: u32 },
    /// Let time pass: members whose session ran out are expelled.
    Tick,
}

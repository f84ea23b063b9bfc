//! Errors of applying a command or of a read. They are answers, not
//! failures of the replica: the same command fails the same way on every
//! replica, and a failed command changes nothing (except that time passes:
//! expired group members are still expelled first).

use serde::{Deserialize, Serialize};

use crate::group::MemberId;
use crate::{LogIndex, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "error")]
pub enum StreamError {
    /// The Raft glue applied entries out of order.
    #[error("log index {got} is not above the applied index {applied}")]
    LogIndexRegressed { applied: LogIndex, got: LogIndex },
    /// A produced batch must hold at least one record.
    #[error("a produced batch must hold at least one record")]
    EmptyBatch,
    /// A fetch below the earliest offset: retention removed those records.
    #[error("offset {requested} is below the earliest offset {earliest}")]
    OffsetBelowEarliest { requested: Offset, earliest: Offset },
    /// A fetch beyond the end offset.
    #[error("offset {requested} is beyond the end offset {end}")]
    OffsetBeyondEnd { requested: Offset, end: Offset },
    /// Retention cannot remove records that were never written.
    #[error("cannot retain from offset {requested}: the end offset is {end}")]
    RetainBeyondEnd { requested: Offset, end: Offset },
    /// An idempotent batch skips sequence numbers (or starts a new producer
    /// or epoch anywhere but 0).
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: Sequence, got: Sequence },
    /// An already-written sequence that is no longer among the cached recent
    /// batches, or that does not match a cached batch's record count.
    #[error("sequence {got} was already written but its batch is no longer known")]
    DuplicateSequenceUnknown { got: Sequence },
    /// A newer epoch of this producer id exists: this producer is a zombie.
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current_epoch}")]
    ProducerFenced {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        current_epoch: ProducerEpoch,
    },
    #[error("unknown consumer group {0}")]
    UnknownGroup(String),
    #[error("unknown member {0} (expired, left, or never joined)")]
    UnknownMember(MemberId),
    /// The member acted in a generation the group has left: rejoin.
    #[error(
        "generation {got} is stale: the group is at generation {current}; rejoin \
         (POST .../join with your member_id) and use the generation and partitions it answers"
    )]
    StaleGeneration { current: u64, got: u64 },
    /// A commit for a partition the member does not own in this generation.
    #[error("member {member_id} does not own partition {partition}")]
    NotPartitionOwner {
        member_id: MemberId,
        partition: PartitionId,
    },
    #[error("partition {partition} does not exist (the stream has {partitions})")]
    UnknownPartition {
        partition: PartitionId,
        partitions: u32,
    },
    /// A member joins with a strategy other than the group's.
    #[error("the group assigns with {group_strategy}, not {requested}")]
    InconsistentStrategy {
        group_strategy: String,
        requested: String,
    },
    /// Seek or delete of a group that has members (seek needs `force`).
    #[error(
        "consumer group {group} has {members} members: they must leave first \
         (POST .../leave); a seek may instead pass \"force\": true, which fences their commits"
    )]
    GroupNotEmpty { group: String, members: usize },
    /// Seek to earliest / latest needs every partition's bounds.
    #[error("the seek carries no bounds for partition {partition}")]
    MissingBounds { partition: PartitionId },
    #[error("session timeout must be positive")]
    InvalidSessionTimeout,
    /// A partition count cannot shrink (Kafka's rule: keys would move).
    #[error("cannot shrink from {current} to {requested} partitions")]
    PartitionCountShrink { current: u32, requested: u32 },
}

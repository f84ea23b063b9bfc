//! The stream state machines of Sluice (Kafka semantics).
//!
//! Every stream partition is an openraft group whose log is its record log.
//! Record bodies stay in the log (the segment log's batches); this crate
//! decides everything else, as pure deterministic functions of (state,
//! command, log index, the `now_ms` carried in the command):
//!
//! - [`PartitionState`]: dense record offsets, independent of Raft indexes,
//!   mapped back to the log entry holding them ([`PartitionState::locate`]);
//!   end offset / high watermark, earliest offset moved by retention,
//!   idempotent producers (producer id, epoch, sequence numbers).
//! - [`GroupCoordinator`]: the consumer groups of one stream — membership
//!   with session timeouts, generations, cooperative `range` / `round-robin`
//!   assignment, committed offsets, lag and seek. Its commands travel in a
//!   designated partition's log (partition 0).
//!
//! - [`StreamSettings`]: a stream's declared settings, as the control plane
//!   validates and stores them and the brokers run partitions by.
//!
//! Both states are serde types: their serialized form is the Raft snapshot,
//! and restoring a snapshot then applying the rest of the log equals
//! applying the whole log. Commands are serde types because they are written
//! to the log.

mod command;
mod error;
mod group;
mod partition;
mod partition_map;
mod producer;
mod settings;

pub use command::{Command, GroupCommand, ProducerBatch, TimedCommand};
pub use error::StreamError;
pub use group::{
    AssignmentStrategy, ConsumerGroup, GroupApplied, GroupCoordinator, GroupReply, Member,
    MemberId, MemberView, PartitionBounds, Revocation, SeekTarget,
};
pub use partition::{BatchSpan, PartitionReply, PartitionState, ProduceResult};
pub use producer::{ProducerState, RECENT_BATCHES};
pub use settings::{InvalidSetting, MAX_PARTITIONS, StreamSettings};

/// A record's position in its partition: dense, starting at 0.
pub type Offset = u64;
/// A Raft log index (also the segment log's batch offset).
pub type LogIndex = u64;
/// A partition's number within its stream, from 0.
pub type PartitionId = u32;
/// An idempotent producer's id, allocated by the broker
/// (`POST /v1/streams/{s}/producers`: 63 random bits from a CSPRNG, not
/// recorded, so unique with overwhelming probability rather than by a counter).
pub type ProducerId = u64;
/// A producer id's epoch: a new session of the same producer id fences older ones.
pub type ProducerEpoch = u32;
/// A record's sequence number within (producer id, epoch, partition).
pub type Sequence = u64;
/// A consumer group's name within its stream.
pub type GroupId = String;

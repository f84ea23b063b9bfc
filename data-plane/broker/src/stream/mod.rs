//! A stream partition hosted on this broker: an openraft group whose log is
//! the partition's record log, the state machine adapter around
//! `sluice_stream::PartitionState`, and the key → partition hash.
//!
//! - [`codec`]: how a partition command and its records become one Raft entry.
//! - [`state_machine`]: openraft's state machine on `PartitionState`.
//! - [`partition`]: opening a partition group, producing, reading records back.
//! - [`hash`]: Kafka's murmur2 partitioner for keyed records.
//! - [`timer`]: retention, producer expiry and the group coordinator's tick.
//! - [`traffic`]: produced and fetched counters, for `/metrics`.
//! - [`host`]: the partitions hosted here, converged to the topology;
//!   [`hibernation`]: how an idle partition sleeps (closed, a summary kept) and wakes.
//! - [`produce`]: writing a batch to every partition it goes to.
//! - [`position`]: where partitions stand, for lag and seeks.
//! - [`consumer_group`]: group commands on the coordinating partition.

pub mod codec;
pub mod consumer_group;
pub mod hash;
pub mod hibernation;
pub mod host;
pub mod partition;
pub mod position;
pub mod produce;
pub mod state_machine;
pub mod timer;
pub mod traffic;

pub use partition::{PartitionGroup, PartitionSpec, StoredRecord};
pub use state_machine::{ApplyError, EntryReply, PartitionOutcome};

//! openraft integration: the segment log as Raft log storage, durable Raft metadata,
//! and a snapshot store.
//!
//! Any `RaftTypeConfig` whose entry type implements [`BatchEntry`] can use
//! [`SegmentLogStore`]; openraft's default `Entry` with `u64` terms and node ids does,
//! for any application data implementing [`BatchPayload`] (such as [`Records`]).

mod entry;
mod log_store;
mod meta;
mod snapshot;

pub use entry::{BatchEntry, BatchPayload, Records, SluiceLeaderId};
pub use log_store::SegmentLogStore;
pub use meta::DurableCell;
pub use snapshot::SnapshotStore;

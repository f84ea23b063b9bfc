//! Sluice's storage engine: an append-only segment log of record batches that is also
//! openraft's log storage for every queue and stream partition.
//!
//! - [`format`](mod@format): the batch codec and the byte layout (see also `FORMAT.md`).
//! - [`SegmentLog`]: one log in one directory — group-committed appends, reads by
//!   offset or timestamp, [`SegmentSlice`] file ranges, truncation, release, retention.
//! - [`raft`]: `RaftLogStorage`/`RaftLogReader` on a [`SegmentLog`], the durable vote
//!   and committed index, and an on-disk snapshot store.
//! - [`disk`]: the room left on the disk under a data directory.
//!
//! ```no_run
//! # async fn demo() -> sluice_storage::Result<()> {
//! use sluice_storage::{Batch, LogConfig, Record, SegmentLog};
//!
//! let log = SegmentLog::open("/var/lib/sluice/groups/q1", LogConfig::default()).await?;
//! // Returns once the batch is fsynced (shared with concurrent appenders).
//! let offset = log.append(&Batch::data(vec![Record::from_value("hello")])).await?;
//! let batches = log.read(offset, 1 << 20)?; // CRC-checked
//! let slice = log.slice(offset, 1 << 20)?; // file + byte range, for sendfile
//! # let _ = (batches, slice);
//! # Ok(())
//! # }
//! ```
//!
//! Durability contract: under the default [`FsyncPolicy::EveryBatch`] an append is
//! acknowledged only after the `fdatasync` that covers it; concurrent appends share one
//! `fdatasync`. After a crash, every acknowledged batch is present and intact, and no
//! batch whose CRC fails is ever served.

mod config;
pub mod disk;
mod error;
pub mod format;
mod index;
mod log;
mod maintenance;
pub mod raft;
mod read;
mod recovery;
mod retention;
mod segment;
mod state;
mod writer;

pub use config::{FsyncPolicy, LogConfig, WriterMode};
pub use error::{Error, Result};
pub use format::{Batch, BatchHeader, BatchKind, EncodedBatch, Record};
pub use index::{IndexEntry, SegmentIndex, TimeEntry};
pub use log::SegmentLog;
pub use read::SegmentSlice;
pub use retention::{RetentionOutcome, RetentionPolicy, SegmentInfo};
pub use segment::{index_file_name, log_file_name};
pub use state::Visibility;
pub use writer::AckFn;

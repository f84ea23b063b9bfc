//! Tunables of a segment log: segment rolling, index density and the fsync policy.

use std::time::Duration;

use crate::error::{Error, Result};

/// When appends become durable, i.e. when they are acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Acknowledge a batch only after the fdatasync that covers it. Concurrent appends
    /// share one fdatasync (group commit). The safe default.
    #[default]
    EveryBatch,
    /// Acknowledge after the write reaches the page cache and fdatasync at most every
    /// interval (and on roll, truncate and close). A crash of the machine (not just the
    /// process) can lose up to one interval of acknowledged batches.
    Interval(Duration),
}

/// Where the group-commit writer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WriterMode {
    /// A tokio task that borrows a blocking-pool thread only while it has work: scales
    /// to thousands of mostly idle logs per node.
    #[default]
    Pooled,
    /// An OS thread of its own for the log's lifetime: fewer thread hand-offs per
    /// append, for a few hot logs where latency matters more than threads.
    Dedicated,
}

/// Configuration of one segment log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Roll the active segment before it would grow past this many bytes.
    pub segment_bytes: u64,
    /// Roll the active segment once it has been open this long (wall time since its
    /// first append in this process), so time retention can delete it.
    pub segment_max_age: Option<Duration>,
    /// Add a sparse index entry every this many bytes of log.
    pub index_interval_bytes: u32,
    /// Durability policy.
    pub fsync: FsyncPolicy,
    /// Most commands the writer drains into one group commit.
    pub max_group_len: usize,
    /// A group commit is cut (written and fsynced) once it holds this many bytes.
    pub max_group_bytes: usize,
    /// Capacity of the append queue; appenders wait when it is full (backpressure).
    pub queue_capacity: usize,
    /// Where the writer runs.
    pub writer: WriterMode,
    /// How long `open` waits for the directory lock, e.g. while a dropped handle to the
    /// same log is still shutting down.
    pub lock_wait: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            segment_max_age: Some(Duration::from_secs(24 * 3600)),
            index_interval_bytes: 4096,
            fsync: FsyncPolicy::EveryBatch,
            max_group_len: 4096,
            max_group_bytes: 16 * 1024 * 1024,
            queue_capacity: 8192,
            writer: WriterMode::Pooled,
            lock_wait: Duration::from_secs(5),
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        // Index positions are u32.
        if self.segment_bytes == 0 || self.segment_bytes > u64::from(u32::MAX) / 2 {
            return Err(Error::Config(format!(
                "segment_bytes must be in 1..=2 GiB, got {}",
                self.segment_bytes
            )));
        }
        if self.max_group_len == 0 || self.queue_capacity == 0 {
            return Err(Error::Config(
                "max_group_len and queue_capacity must be positive".into(),
            ));
        }
        Ok(())
    }
}

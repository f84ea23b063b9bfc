//! The shared description of a log's segments that readers consult and the writer updates.
//!
//! Guarded by a plain `RwLock` that is only ever held for in-memory bookkeeping: readers
//! copy out a file handle and a byte range, drop the lock, then do their I/O. The lock is
//! never held across an `.await` or a disk operation on the read path.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::format::BatchHeader;
use crate::index::SegmentIndex;
use crate::segment::SegmentPaths;

/// One segment as readers see it.
#[derive(Debug)]
pub struct SegmentState {
    /// Offset in the file name; every batch in it has an offset at least this.
    pub base: u64,
    /// File paths.
    pub paths: SegmentPaths,
    /// Shared handle used for positional reads (and writes, by the writer only).
    pub file: Arc<File>,
    /// Sparse offset and time index over the written bytes.
    pub index: SegmentIndex,
    /// Bytes written (page cache).
    pub written_len: u64,
    /// Bytes acknowledged to appenders (durable under the default policy).
    pub acked_len: u64,
    /// Whether the segment is sealed (immutable, with an index file).
    pub sealed: bool,
}

/// Which appends a reader may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Only acknowledged batches: what consumers must see.
    Acked,
    /// Everything written, including batches whose fsync is still in flight. Raft needs
    /// this: entries must be readable as soon as `append` returns.
    Written,
}

impl SegmentState {
    /// Readable length under `vis`.
    pub fn visible_len(&self, vis: Visibility) -> u64 {
        match vis {
            Visibility::Acked => self.acked_len,
            Visibility::Written => self.written_len,
        }
    }
}

/// Everything readers need, behind one lock.
#[derive(Debug, Default)]
pub struct LogState {
    /// Segments by base offset; the last one is active.
    pub segments: BTreeMap<u64, SegmentState>,
    /// Offsets below this are released (purged or removed by retention).
    pub start_offset: u64,
    /// Offset after the last written batch (the next auto-assigned offset).
    pub written_next: u64,
    /// Offset after the last acknowledged batch.
    pub acked_next: u64,
    /// Header of the last written batch.
    pub last_written: Option<BatchHeader>,
}

/// The lock plus the log directory.
#[derive(Debug)]
pub struct Shared {
    /// Directory holding the segments.
    pub dir: PathBuf,
    state: RwLock<LogState>,
    /// The `flock`ed `lock` file; dropping it lets the directory be opened again.
    dir_lock: Mutex<Option<File>>,
}

impl Shared {
    /// Wraps recovered state.
    pub fn new(dir: PathBuf, state: LogState, dir_lock: File) -> Arc<Self> {
        Arc::new(Shared {
            dir,
            state: RwLock::new(state),
            dir_lock: Mutex::new(Some(dir_lock)),
        })
    }

    /// Releases the directory lock (after the writer has stopped).
    pub fn unlock(&self) {
        self.dir_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Read access. A panic while the lock was held cannot leave the bookkeeping torn
    /// (the writer updates it in single assignments), so poisoning is ignored.
    pub fn read(&self) -> RwLockReadGuard<'_, LogState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access (writer only).
    pub fn write(&self) -> RwLockWriteGuard<'_, LogState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

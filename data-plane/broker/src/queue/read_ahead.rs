//! Reading a queue's log ahead of its consumers (issue 21): a deep queue's
//! oldest entries have long left the page cache when the consumers reach
//! them, and reading each entry only when a delivery needs it would wait on
//! the disk once per entry. Consumers take messages in log order, so after
//! each read the next `log_read_ahead_entries` entries (default 256) are
//! handed to the kernel to fetch in the background
//! ([`sluice_storage::SegmentLog::read_ahead`]), half a window before the
//! consumers get there.
//!
//! The window is process-wide like the backlog's memory budget
//! ([`super::spill`]): set once at start, read as groups read.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sluice_storage::SegmentLog;

/// The default of `log_read_ahead_entries` (also the broker config's).
pub const DEFAULT_ENTRIES: usize = 256;

static ENTRIES: AtomicUsize = AtomicUsize::new(DEFAULT_ENTRIES);

/// Sets the entries read ahead (0: none), for reads from now on.
pub fn set_entries(entries: usize) {
    ENTRIES.store(entries, Ordering::Relaxed);
}

/// How far one queue's log has been handed to the kernel.
#[derive(Debug, Default)]
pub struct ReadAhead {
    /// Entries below this were asked for already.
    hinted_to: AtomicU64,
}

impl ReadAhead {
    /// Entries up to `highest` were just read: ask for the window after it
    /// once the reads are half way through what was asked for.
    pub fn after_read(&self, log: &SegmentLog, highest: u64) {
        let window = ENTRIES.load(Ordering::Relaxed) as u64;
        if window == 0 {
            return;
        }
        let hinted = self.hinted_to.load(Ordering::Relaxed);
        if highest + window / 2 < hinted {
            return;
        }
        let from = hinted.max(highest + 1);
        let to = highest + 1 + window;
        if self.hinted_to.fetch_max(to, Ordering::Relaxed) < to {
            log.read_ahead(from, to);
        }
    }
}

//! What of a queue's state is this replica's own rather than replicated:
//! where its deep backlog spills ([`SpillConfig`]). The broker configures
//! it on the state it opens, carries it over to a state restored from a
//! snapshot, attaches it before the log after the snapshot is applied,
//! stops the group on a [`QueueState::spill_fault`], and brackets each
//! snapshot with [`QueueState::sync_spill`] / [`QueueState::snapshot_saved`]
//! so a snapshot only names durable page files and a page file outlives
//! the last snapshot that names it.

use crate::backlog::{SpillConfig, SpillError};
use crate::state::QueueState;

impl QueueState {
    /// This state, spilling its backlog beyond `config.memory_pages` pages
    /// to `config.dir` once [`QueueState::attach_spill`] opens it.
    pub fn with_spill(mut self, config: SpillConfig) -> Self {
        self.backlog.configure(config);
        self
    }

    /// Takes `restored` (from a snapshot) in place of this state, keeping
    /// this replica's spill settings; attach them next.
    pub fn restore_from(&mut self, restored: QueueState) {
        let config = self.backlog.config();
        *self = restored;
        if let Some(config) = config {
            self.backlog.configure(config);
        }
    }

    /// Opens the page directory: deletes page files the state does not name
    /// (spilled after its snapshot), reads the front pages, and spills from
    /// here on. Without spill settings, nothing.
    pub fn attach_spill(&mut self) -> Result<(), SpillError> {
        self.backlog.attach()
    }

    /// A spilled page that could not be read back: the state is wrong from
    /// the command that needed it, so the group must stop (and reopen from
    /// its snapshot and log).
    pub fn spill_fault(&self) -> Option<String> {
        self.backlog.fault()
    }

    /// Makes every page file durable, so a snapshot serialized now may name
    /// them; pass the mark to [`QueueState::snapshot_saved`] once that
    /// snapshot is durable.
    pub fn sync_spill(&self) -> Result<u64, SpillError> {
        self.backlog.sync()
    }

    /// The snapshot serialized after `mark` is durable: page files no
    /// snapshot or state names any more are deleted.
    pub fn snapshot_saved(&mut self, mark: u64) {
        self.backlog.snapshot_saved(mark);
    }

    /// Backlog pages held in memory, and in all (memory and disk).
    pub fn backlog_pages(&self) -> (usize, usize) {
        self.backlog.pages()
    }
}

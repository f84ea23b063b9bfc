//! openraft's `RaftLogStorage` and `RaftLogReader` on a [`SegmentLog`]: the Raft log of
//! a queue or stream partition *is* its message log.
//!
//! `append` hands every entry to the group-commit writer at once, returns when they are
//! readable, and calls openraft's callback only after the fdatasync that covers the
//! last of them. Truncation and purge map to the log's truncate and release. The vote,
//! committed and purged log ids live in [`DurableCell`]s next to the segments.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::alias::{LogIdOf, VoteOf};
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, RaftTypeConfig};

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::format::EncodedBatch;
use crate::log::SegmentLog;
use crate::raft::entry::BatchEntry;
use crate::raft::meta::DurableCell;
use crate::state::Visibility;

/// Bytes read per step when collecting a range of entries.
const READ_STEP: usize = 1024 * 1024;

struct Cells {
    vote: DurableCell,
    committed: DurableCell,
    purged: DurableCell,
}

struct Cached<C: RaftTypeConfig> {
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
    purged: Option<LogIdOf<C>>,
}

/// Raft log storage (and reader) backed by a segment log directory.
pub struct SegmentLogStore<C: RaftTypeConfig> {
    log: SegmentLog,
    cells: Arc<Cells>,
    cached: Arc<Mutex<Cached<C>>>,
}

impl<C: RaftTypeConfig> Clone for SegmentLogStore<C> {
    fn clone(&self) -> Self {
        SegmentLogStore {
            log: self.log.clone(),
            cells: self.cells.clone(),
            cached: self.cached.clone(),
        }
    }
}

impl<C: RaftTypeConfig> Debug for SegmentLogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLogStore")
            .field("log", &self.log)
            .finish()
    }
}

impl<C> SegmentLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: BatchEntry,
{
    /// Opens the Raft log in `dir` (segments plus the vote/committed/purged files),
    /// finishing any purge a crash interrupted.
    pub async fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self> {
        let log = SegmentLog::open(dir.as_ref(), config).await?;
        let cells_dir = dir.as_ref().to_path_buf();
        let (cells, vote, committed, purged) = tokio::task::spawn_blocking(move || -> Result<_> {
            let cells = Cells {
                vote: DurableCell::open(&cells_dir, "raft-vote")?,
                committed: DurableCell::open(&cells_dir, "raft-committed")?,
                purged: DurableCell::open(&cells_dir, "raft-purged")?,
            };
            let vote: Option<VoteOf<C>> = cells.vote.load()?;
            let committed: Option<LogIdOf<C>> = cells.committed.load()?;
            let purged: Option<LogIdOf<C>> = cells.purged.load()?;
            Ok((cells, vote, committed, purged))
        })
        .await
        .map_err(|e| Error::io("open raft metadata", io::Error::other(e.to_string())))??;
        if let Some(p) = &purged
            && log.start_offset() <= p.index()
        {
            log.release_below(p.index() + 1).await?;
        }
        Ok(SegmentLogStore {
            log,
            cells: Arc::new(cells),
            cached: Arc::new(Mutex::new(Cached {
                vote,
                committed,
                purged,
            })),
        })
    }

    /// The underlying segment log (for reads by the state machines, retention, slices).
    pub fn log(&self) -> &SegmentLog {
        &self.log
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Cached<C>> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn store_cell<T>(&self, pick: fn(&Cells) -> &DurableCell, value: T) -> Result<()>
    where
        T: serde::Serialize + Send + 'static,
    {
        let cells = self.cells.clone();
        tokio::task::spawn_blocking(move || pick(&cells).store(&value))
            .await
            .map_err(|e| Error::io("store raft metadata", io::Error::other(e.to_string())))?
    }

    fn entries_in(&self, start: u64, end: u64) -> Result<Vec<C::Entry>> {
        let mut out = Vec::new();
        let mut at = start;
        while at < end {
            let batches = self.log.read_with(at, READ_STEP, Visibility::Written)?;
            if batches.is_empty() {
                break;
            }
            for b in batches {
                if b.offset >= end {
                    return Ok(out);
                }
                at = b.offset + 1;
                out.push(C::Entry::from_batch(b)?);
            }
        }
        Ok(out)
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Calls openraft's callback once every entry of one `append` is acknowledged.
struct FlushTracker<C: RaftTypeConfig> {
    remaining: usize,
    error: Option<String>,
    callback: Option<IOFlushed<C>>,
}

impl<C: RaftTypeConfig> FlushTracker<C> {
    fn finish_one(tracker: &Mutex<Self>, result: Result<u64>) {
        let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = result
            && t.error.is_none()
        {
            t.error = Some(e.to_string());
        }
        t.remaining = t.remaining.saturating_sub(1);
        if t.remaining == 0
            && let Some(cb) = t.callback.take()
        {
            let result = match t.error.take() {
                None => Ok(()),
                Some(e) => Err(io::Error::other(e)),
            };
            cb.io_completed(result);
        }
    }
}

impl<C> RaftLogReader<C> for SegmentLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: BatchEntry,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<C::Entry>, io::Error> {
        let (start, end) = bounds(&range);
        Ok(self.entries_in(start, end)?)
    }

    async fn read_vote(&mut self) -> std::result::Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.cached().vote.clone())
    }
}

impl<C> RaftLogStorage<C> for SegmentLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: BatchEntry,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> std::result::Result<LogState<C>, io::Error> {
        let purged = self.cached().purged.clone();
        let last = self.log.last_batch().map(|h| C::Entry::log_id_of(&h));
        let last = match (last, &purged) {
            (Some(l), Some(p)) if l.index() <= p.index() => Some(p.clone()),
            (Some(l), _) => Some(l),
            (None, p) => p.clone(),
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> std::result::Result<(), io::Error> {
        self.store_cell(|c| &c.vote, vote.clone()).await?;
        self.cached().vote = Some(vote.clone());
        Ok(())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<C>>,
    ) -> std::result::Result<(), io::Error> {
        self.store_cell(|c| &c.committed, committed.clone()).await?;
        self.cached().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> std::result::Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.cached().committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<C>,
    ) -> std::result::Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let batch = entry.to_batch()?;
            encoded.push((batch.offset, EncodedBatch::encode(&batch)?));
        }
        if encoded.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        let tracker = Arc::new(Mutex::new(FlushTracker {
            remaining: encoded.len(),
            error: None,
            callback: Some(callback),
        }));
        let total = encoded.len();
        let mut written = Vec::with_capacity(total);
        for (offset, batch) in encoded {
            let t = tracker.clone();
            let ack = Box::new(move |r| FlushTracker::finish_one(&t, r));
            match self.log.submit(batch, Some(offset), ack).await {
                Ok(rx) => written.push(rx),
                Err(e) => {
                    for _ in written.len()..total {
                        FlushTracker::finish_one(&tracker, Err(Error::Closed));
                    }
                    return Err(e.into());
                }
            }
        }
        for rx in written {
            rx.await.map_err(|_| io::Error::from(Error::Closed))??;
        }
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<C>>,
    ) -> std::result::Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index() + 1);
        Ok(self.log.truncate(from).await?)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> std::result::Result<(), io::Error> {
        // Record the purge first: if we crash before the segments go, open() finishes it.
        self.store_cell(|c| &c.purged, Some(log_id.clone())).await?;
        let below = log_id.index() + 1;
        self.cached().purged = Some(log_id);
        Ok(self.log.release_below(below).await?)
    }
}

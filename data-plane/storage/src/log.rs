//! [`SegmentLog`]: the handle the broker (and the Raft log store) uses to append to,
//! read from, truncate and trim one queue's or partition's log.
//!
//! Cloning the handle is cheap; all clones talk to the same writer task. The writer
//! stops (after a final fsync) when the last clone is dropped or [`SegmentLog::close`]
//! is called. Opening requires a tokio runtime.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{LogConfig, WriterMode};
use crate::error::{Error, IoContext, Result};
use crate::format::{Batch, BatchHeader, EncodedBatch, now_ms};
use crate::recovery;
use crate::retention::{RetentionOutcome, RetentionPolicy, SegmentInfo};
use crate::state::Shared;
use crate::writer::{self, AckFn, AppendCmd, Command, Writer};

/// One segment log in one directory.
#[derive(Clone)]
pub struct SegmentLog {
    pub(crate) shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// Takes an exclusive `flock` on `<dir>/lock`, so two opens of one directory (in this
/// process or another) cannot both write it. The kernel drops the lock when the holder
/// dies, so a crash never leaves it stale.
async fn lock_dir(dir: &Path, wait: Duration) -> Result<File> {
    std::fs::create_dir_all(dir).ctx(|| format!("create log directory {}", dir.display()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("open {}", path.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(file);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock {
            return Err(Error::io(format!("lock {}", path.display()), err));
        }
        if Instant::now() >= deadline {
            return Err(Error::Locked(dir.to_path_buf()));
        }
        // A handle that was just dropped may still be flushing on its writer task.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl std::fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog")
            .field("dir", &self.shared.dir)
            .finish()
    }
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir`, running crash recovery, and starts
    /// its writer task.
    pub async fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self> {
        config.validate()?;
        let dir: PathBuf = dir.as_ref().to_path_buf();
        let dir_lock = lock_dir(&dir, config.lock_wait).await?;
        let recover_config = config.clone();
        let recover_dir = dir.clone();
        let state =
            tokio::task::spawn_blocking(move || recovery::recover(&recover_dir, &recover_config))
                .await
                .map_err(|e| Error::io("recovery task", std::io::Error::other(e.to_string())))??;
        let shared = Shared::new(dir, state, dir_lock);
        let capacity = config.queue_capacity;
        let writer_mode = config.writer;
        let writer = Writer::new(shared.clone(), config)?;
        let (tx, rx) = mpsc::channel(capacity);
        let task = match writer_mode {
            WriterMode::Pooled => tokio::spawn(writer::run(writer, rx)),
            WriterMode::Dedicated => {
                tokio::task::spawn_blocking(move || writer::run_dedicated(writer, rx))
            }
        };
        Ok(SegmentLog {
            shared,
            tx,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Appends `batch` at the next offset and returns that offset once acknowledged
    /// (after the fsync covering it, under the default policy).
    pub async fn append(&self, batch: &Batch) -> Result<u64> {
        let encoded = EncodedBatch::encode(batch)?;
        self.append_encoded(encoded, None).await
    }

    /// Appends `batch` at exactly `batch.offset`, which must be past the end of the log
    /// (gaps are allowed; Raft indexes are contiguous in practice).
    pub async fn append_at(&self, batch: &Batch) -> Result<u64> {
        let encoded = EncodedBatch::encode(batch)?;
        self.append_encoded(encoded, Some(batch.offset)).await
    }

    /// Appends an already encoded batch and waits for its acknowledgement.
    pub async fn append_encoded(&self, batch: EncodedBatch, offset: Option<u64>) -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        let ack: AckFn = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.send(Command::Append(AppendCmd {
            batch,
            offset,
            written: None,
            ack,
        }))
        .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Queues an append without waiting: the returned receiver resolves once the batch
    /// is *readable* (written; its fsync may still be pending), and `ack` is called
    /// later, once it is acknowledged. Submitting several batches before awaiting lets
    /// them share one group commit. This is the shape Raft's log storage needs.
    pub async fn submit(
        &self,
        batch: EncodedBatch,
        offset: Option<u64>,
        ack: AckFn,
    ) -> Result<oneshot::Receiver<Result<u64>>> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Append(AppendCmd {
            batch,
            offset,
            written: Some(tx),
            ack,
        }))
        .await?;
        Ok(rx)
    }

    /// Removes every batch with offset `>= from` (a Raft conflict, or an aborted tail).
    pub async fn truncate(&self, from: u64) -> Result<()> {
        self.request(|done| Command::Truncate { from, done }).await
    }

    /// Releases every offset below `below` (release cursor / Raft purge): the start
    /// offset moves there durably and segments wholly below it are deleted. Offsets
    /// below the start are no longer served.
    pub async fn release_below(&self, below: u64) -> Result<()> {
        self.request(|done| Command::Release { below, done }).await
    }

    /// Deletes the oldest sealed segments that `policy` no longer keeps.
    pub async fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionOutcome> {
        let policy = policy.clone();
        self.request(|done| Command::Retention {
            policy,
            now_ms: now_ms(),
            done,
        })
        .await
    }

    /// Seals the active segment now, if it holds any batch.
    pub async fn roll(&self) -> Result<()> {
        self.request(|done| Command::Roll { done }).await
    }

    /// fdatasyncs the active segment now (useful under the interval policy).
    pub async fn sync(&self) -> Result<()> {
        self.request(|done| Command::Sync { done }).await
    }

    /// Stops the writer after a final fsync and waits for it. Every clone then fails
    /// with [`Error::Closed`].
    pub async fn close(&self) -> Result<()> {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        // A send error means the writer is already gone, which is what we want.
        let _ = self.tx.send(Command::Shutdown).await;
        if let Some(task) = task {
            task.await
                .map_err(|e| Error::io("writer task", std::io::Error::other(e.to_string())))?;
            self.shared.unlock();
        }
        Ok(())
    }

    async fn send(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).await.map_err(|_| Error::Closed)
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// First offset still served.
    pub fn start_offset(&self) -> u64 {
        self.shared.read().start_offset
    }

    /// Offset after the last acknowledged batch.
    pub fn next_offset(&self) -> u64 {
        self.shared.read().acked_next
    }

    /// Header of the last written batch (acknowledged or not), if any at or above the
    /// start offset.
    pub fn last_batch(&self) -> Option<BatchHeader> {
        self.shared.read().last_written
    }

    /// All segments, oldest first; the last one is active.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        crate::maintenance::segment_infos(&self.shared.read())
    }
}

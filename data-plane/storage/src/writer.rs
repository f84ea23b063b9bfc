//! Group commit: the single task that owns the active segment.
//!
//! Appenders encode and checksum their batch on their own task, then send it over a
//! bounded channel with a completion callback. The writer drains everything queued,
//! stamps offsets, writes the lot with one `pwrite` per segment, makes it readable,
//! runs one `fdatasync`, and only then acknowledges every batch it covered. Blocking
//! file I/O runs on tokio's blocking pool: the writer state is moved into
//! `spawn_blocking` and back, so no lock is held across an `.await`.
//!
//! Commands that change the set of segments (truncate, release, retention, roll) go
//! through the same queue, so they are ordered with appends without extra locking.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::config::{FsyncPolicy, LogConfig};
use crate::error::{Error, IoContext, Result};
use crate::format::EncodedBatch;
use crate::retention::{RetentionOutcome, RetentionPolicy};
use crate::segment;
use crate::state::Shared;

/// Called once per append with its offset after it is acknowledged (durable under the
/// default policy), or with the error that prevented it.
pub type AckFn = Box<dyn FnOnce(Result<u64>) + Send>;

/// Largest single `pwrite` the writer issues.
const MAX_WRITE: usize = 8 * 1024 * 1024;

/// One queued append.
pub struct AppendCmd {
    /// The encoded batch; its offset is stamped by the writer.
    pub batch: EncodedBatch,
    /// Required offset (Raft index), or `None` to take the next one.
    pub offset: Option<u64>,
    /// Told the offset as soon as the batch is readable (before its fsync).
    pub written: Option<oneshot::Sender<Result<u64>>>,
    /// Told once the batch is acknowledged.
    pub ack: AckFn,
}

/// Everything the writer can be asked to do.
pub enum Command {
    /// Append a batch.
    Append(AppendCmd),
    /// Remove every batch with an offset `>= from`.
    Truncate {
        /// First offset removed.
        from: u64,
        /// Completion.
        done: oneshot::Sender<Result<()>>,
    },
    /// Release every offset below `below` and delete the segments wholly below it.
    Release {
        /// New start offset.
        below: u64,
        /// Completion.
        done: oneshot::Sender<Result<()>>,
    },
    /// Apply a retention policy.
    Retention {
        /// The limits.
        policy: RetentionPolicy,
        /// "Now", in ms since the epoch.
        now_ms: i64,
        /// Completion.
        done: oneshot::Sender<Result<RetentionOutcome>>,
    },
    /// Seal the active segment now (if it holds anything).
    Roll {
        /// Completion.
        done: oneshot::Sender<Result<()>>,
    },
    /// fdatasync the active segment now.
    Sync {
        /// Completion.
        done: oneshot::Sender<Result<()>>,
    },
    /// fdatasync and stop; later commands fail with [`Error::Closed`].
    Shutdown,
}

enum Outcome {
    Pending,
    Written(u64),
    Rejected { requested: u64, next: u64 },
}

struct Pending {
    cmd: AppendCmd,
    outcome: Outcome,
}

/// The writer's private state. Lives in the writer task, or in a blocking-pool thread
/// while it does I/O.
pub struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: LogConfig,
    pub(crate) active_base: u64,
    pub(crate) active_file: Arc<File>,
    pub(crate) active_len: u64,
    pub(crate) synced_len: u64,
    /// When the active segment received its first append in this process (age rolling).
    pub(crate) active_since: Option<Instant>,
    pub(crate) next: u64,
    pub(crate) last_sync: Instant,
    /// Set after a failed write or fsync: the page cache state is unknown, so nothing
    /// more is accepted until the log is reopened and recovered.
    pub(crate) failed: Option<String>,
    stopping: bool,
}

impl Writer {
    /// Takes over the recovered state's active segment.
    pub fn new(shared: Arc<Shared>, config: LogConfig) -> Result<Self> {
        let (active_base, active_file, active_len, next) = {
            let st = shared.read();
            let (base, seg) = st
                .segments
                .iter()
                .next_back()
                .ok_or_else(|| Error::Config("log has no segment".into()))?;
            (*base, seg.file.clone(), seg.written_len, st.written_next)
        };
        Ok(Writer {
            shared,
            config,
            active_base,
            active_file,
            active_len,
            synced_len: active_len,
            active_since: None,
            next,
            last_sync: Instant::now(),
            failed: None,
            stopping: false,
        })
    }

    fn check_failed(&self) -> Result<()> {
        match &self.failed {
            Some(reason) => Err(Error::WriterFailed(reason.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: &Error) -> String {
        let reason = e.to_string();
        tracing::error!(error = %reason, dir = %self.shared.dir.display(), "segment log writer failed");
        self.failed = Some(reason.clone());
        reason
    }

    /// Runs a drained set of commands in order, group-committing runs of appends.
    fn execute(&mut self, cmds: &mut Vec<Command>) {
        let mut appends = Vec::new();
        let mut group_bytes = 0usize;
        for cmd in cmds.drain(..) {
            if self.stopping {
                // Dropping the command drops its callbacks, failing the waiters.
                continue;
            }
            match cmd {
                Command::Append(a) => {
                    group_bytes += a.batch.len();
                    appends.push(Pending {
                        cmd: a,
                        outcome: Outcome::Pending,
                    });
                    // Bounding a group keeps appenders encoding the next batches while
                    // this one is flushed, instead of the whole queue moving in lockstep.
                    if group_bytes >= self.config.max_group_bytes {
                        self.commit_group(std::mem::take(&mut appends));
                        group_bytes = 0;
                    }
                }
                other => {
                    self.commit_group(std::mem::take(&mut appends));
                    self.run_command(other);
                }
            }
        }
        self.commit_group(appends);
    }

    fn run_command(&mut self, cmd: Command) {
        match cmd {
            Command::Append(_) => {}
            Command::Truncate { from, done } => {
                let r = self.check_failed().and_then(|()| self.truncate(from));
                let _ = done.send(self.note_failure(r));
            }
            Command::Release { below, done } => {
                let r = self.check_failed().and_then(|()| self.release(below));
                let _ = done.send(self.note_failure(r));
            }
            Command::Retention {
                policy,
                now_ms,
                done,
            } => {
                let r = self
                    .check_failed()
                    .and_then(|()| self.apply_retention(&policy, now_ms));
                let _ = done.send(self.note_failure(r));
            }
            Command::Roll { done } => {
                let r = self.check_failed().and_then(|()| {
                    if self.active_len > 0 {
                        self.roll_to(self.next)
                    } else {
                        Ok(())
                    }
                });
                let _ = done.send(self.note_failure(r));
            }
            Command::Sync { done } => {
                let r = self.check_failed().and_then(|()| self.sync_active());
                let _ = done.send(self.note_failure(r));
            }
            Command::Shutdown => {
                if self.failed.is_none() {
                    let r = self.sync_active();
                    let _ = self.note_failure(r);
                }
                self.stopping = true;
            }
        }
    }

    /// I/O failures in segment maintenance leave the files in an unknown state too.
    fn note_failure<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e @ Error::Io { .. }) = &r {
            self.fail(e);
        }
        r
    }

    fn commit_group(&mut self, mut group: Vec<Pending>) {
        if group.is_empty() {
            return;
        }
        let result = self
            .check_failed()
            .and_then(|()| self.write_group(&mut group));
        if let Err(e) = result {
            let reason = match &e {
                Error::WriterFailed(r) => r.clone(),
                other => self.fail(other),
            };
            for p in group {
                if let Some(tx) = p.cmd.written {
                    let _ = tx.send(Err(Error::WriterFailed(reason.clone())));
                }
                (p.cmd.ack)(Err(Error::WriterFailed(reason.clone())));
            }
            return;
        }
        for p in &mut group {
            if let Some(tx) = p.cmd.written.take() {
                let _ = tx.send(outcome_result(&p.outcome));
            }
        }
        let durable = match self.config.fsync {
            FsyncPolicy::EveryBatch => self.sync_active(),
            FsyncPolicy::Interval(_) => Ok(()),
        };
        if let Err(e) = durable {
            let reason = self.fail(&e);
            for p in group {
                (p.cmd.ack)(Err(Error::WriterFailed(reason.clone())));
            }
            return;
        }
        self.publish_acked();
        for p in group {
            (p.cmd.ack)(outcome_result(&p.outcome));
        }
    }

    /// Makes everything written so far visible to `Visibility::Acked` readers.
    fn publish_acked(&self) {
        let mut st = self.shared.write();
        if let Some(seg) = st.segments.get_mut(&self.active_base) {
            seg.acked_len = self.active_len;
        }
        st.acked_next = self.next;
    }

    fn write_group(&mut self, group: &mut [Pending]) -> Result<()> {
        // Batches are written straight from their own buffers with one pwritev per
        // run; `run` holds the indexes of the batches not yet written.
        let mut run: Vec<usize> = Vec::new();
        let mut run_len = 0u64;
        for i in 0..group.len() {
            let offset = match group[i].cmd.offset {
                Some(o) if o < self.next => {
                    group[i].outcome = Outcome::Rejected {
                        requested: o,
                        next: self.next,
                    };
                    continue;
                }
                Some(o) => o,
                None => self.next,
            };
            let len = group[i].cmd.batch.len() as u64;
            if self.should_roll(run_len + len) {
                self.flush_run(group, &mut run, &mut run_len)?;
                self.roll_to(offset)?;
            }
            let p = &mut group[i];
            p.cmd.batch.stamp_offset(offset);
            self.next = offset + 1;
            self.active_since.get_or_insert_with(Instant::now);
            p.outcome = Outcome::Written(offset);
            run.push(i);
            run_len += len;
            if run_len >= MAX_WRITE as u64 {
                self.flush_run(group, &mut run, &mut run_len)?;
            }
        }
        self.flush_run(group, &mut run, &mut run_len)
    }

    fn should_roll(&self, adding: u64) -> bool {
        if self.active_len == 0 {
            return false;
        }
        let too_big = self.active_len + adding > self.config.segment_bytes;
        let too_old = match (self.config.segment_max_age, self.active_since) {
            (Some(age), Some(since)) => since.elapsed() >= age,
            _ => false,
        };
        too_big || too_old
    }

    /// Writes the batches `run` indexes to the active segment and makes them readable.
    fn flush_run(
        &mut self,
        group: &[Pending],
        run: &mut Vec<usize>,
        run_len: &mut u64,
    ) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let base = self.active_base;
        let bufs: Vec<&[u8]> = run.iter().map(|&i| group[i].cmd.batch.as_bytes()).collect();
        segment::write_all_vectored_at(&self.active_file, &bufs, self.active_len)
            .ctx(|| format!("write segment {base}"))?;
        let mut st = self.shared.write();
        let mut position = self.active_len;
        if let Some(seg) = st.segments.get_mut(&base) {
            for &i in run.iter() {
                let h = group[i].cmd.batch.header();
                seg.index
                    .on_batch(h.offset, position, h.len, h.last_timestamp);
                position += u64::from(h.len);
            }
            seg.written_len = position;
        }
        self.active_len = position;
        st.written_next = self.next;
        if let Some(&i) = run.last() {
            st.last_written = Some(group[i].cmd.batch.header());
        }
        if matches!(self.config.fsync, FsyncPolicy::Interval(_))
            && let Some(seg) = st.segments.get_mut(&base)
        {
            seg.acked_len = self.active_len;
            st.acked_next = self.next;
        }
        drop(st);
        run.clear();
        *run_len = 0;
        Ok(())
    }

    /// fdatasyncs the active segment if it has unsynced bytes.
    pub(crate) fn sync_active(&mut self) -> Result<()> {
        if self.synced_len < self.active_len {
            let base = self.active_base;
            self.active_file
                .sync_data()
                .ctx(|| format!("fdatasync segment {base}"))?;
            self.synced_len = self.active_len;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// When the interval policy owes an fsync, the instant it is due.
    fn sync_deadline(&self) -> Option<Instant> {
        match self.config.fsync {
            FsyncPolicy::Interval(every)
                if self.synced_len < self.active_len && self.failed.is_none() =>
            {
                Some(self.last_sync + every)
            }
            _ => None,
        }
    }
}

fn outcome_result(o: &Outcome) -> Result<u64> {
    match o {
        Outcome::Written(offset) => Ok(*offset),
        Outcome::Rejected { requested, next } => Err(Error::OffsetOutOfOrder {
            requested: *requested,
            next: *next,
        }),
        Outcome::Pending => Err(Error::Closed),
    }
}

/// Runs `f` on `state` in tokio's blocking pool and hands the state back.
async fn on_blocking_pool<S: Send + 'static, T: Send + 'static>(
    state: S,
    f: impl FnOnce(&mut S) -> T + Send + 'static,
) -> Option<(S, T)> {
    let joined = tokio::task::spawn_blocking(move || {
        let mut state = state;
        let out = f(&mut state);
        (state, out)
    })
    .await;
    match joined {
        Ok(v) => Some(v),
        // The runtime shutting down cancels blocking tasks not yet started:
        // a clean stop, not an error. Dropping the writer drops every
        // pending callback, which fails the waiters.
        Err(e) if e.is_cancelled() => {
            tracing::debug!("segment log writer stopped with the runtime");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "segment log writer panicked");
            None
        }
    }
}

/// What moves between the writer task and the blocking pool.
struct Core {
    w: Writer,
    rx: mpsc::Receiver<Command>,
    /// Reused between groups: a fresh `max_group_len` buffer per group would cost a
    /// large allocation (and page faults) per fsync.
    cmds: Vec<Command>,
}

impl Core {
    /// Executes the drained commands, then keeps draining and executing while more are
    /// queued, so a busy log stays on one blocking thread instead of bouncing through
    /// the async task between group commits.
    fn drain_and_execute(&mut self) {
        let limit = self.w.config.max_group_len;
        loop {
            self.w.execute(&mut self.cmds);
            if self.w.stopping {
                return;
            }
            if self.w.sync_deadline().is_some_and(|d| d <= Instant::now()) {
                let r = self.w.sync_active();
                let _ = self.w.note_failure(r);
            }
            while self.cmds.len() < limit {
                match self.rx.try_recv() {
                    Ok(cmd) => self.cmds.push(cmd),
                    Err(_) => break,
                }
            }
            if self.cmds.is_empty() {
                return;
            }
        }
    }
}

/// The writer task: drain, group-commit, repeat, until every sender is gone.
pub async fn run(writer: Writer, rx: mpsc::Receiver<Command>) {
    let cmds = Vec::with_capacity(writer.config.max_group_len);
    let mut core = Core {
        w: writer,
        rx,
        cmds,
    };
    loop {
        let limit = core.w.config.max_group_len;
        let n = match core.w.sync_deadline() {
            Some(deadline) => {
                tokio::select! {
                    n = core.rx.recv_many(&mut core.cmds, limit) => n,
                    () = tokio::time::sleep_until(deadline.into()) => {
                        match on_blocking_pool(core, |c| {
                            let r = c.w.sync_active();
                            c.w.note_failure(r)
                        }).await {
                            Some((back, _)) => core = back,
                            None => return,
                        }
                        continue;
                    }
                }
            }
            None => core.rx.recv_many(&mut core.cmds, limit).await,
        };
        if n == 0 {
            let _ = on_blocking_pool(core, |c| {
                if c.w.failed.is_none() {
                    let _ = c.w.sync_active();
                }
            })
            .await;
            return;
        }
        match on_blocking_pool(core, Core::drain_and_execute).await {
            Some((back, ())) => core = back,
            None => return,
        }
        if core.w.stopping {
            return;
        }
    }
}

/// The writer on a thread of its own ([`crate::WriterMode::Dedicated`]): block for the
/// next command, drain and group-commit, repeat, until every sender is gone.
pub fn run_dedicated(writer: Writer, rx: mpsc::Receiver<Command>) {
    use tokio::sync::mpsc::error::TryRecvError;
    let cmds = Vec::with_capacity(writer.config.max_group_len);
    let mut core = Core {
        w: writer,
        rx,
        cmds,
    };
    loop {
        let next = match core.w.sync_deadline() {
            None => core.rx.blocking_recv(),
            // An fsync is owed: poll until it is due instead of blocking indefinitely.
            Some(deadline) => loop {
                match core.rx.try_recv() {
                    Ok(cmd) => break Some(cmd),
                    Err(TryRecvError::Disconnected) => break None,
                    Err(TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= deadline {
                            let r = core.w.sync_active();
                            let _ = core.w.note_failure(r);
                            if core.w.sync_deadline().is_none() {
                                break core.rx.blocking_recv();
                            }
                        } else {
                            std::thread::sleep(
                                (deadline - now).min(std::time::Duration::from_micros(500)),
                            );
                        }
                    }
                }
            },
        };
        let Some(cmd) = next else {
            if core.w.failed.is_none() {
                let _ = core.w.sync_active();
            }
            return;
        };
        core.cmds.push(cmd);
        core.drain_and_execute();
        if core.w.stopping {
            return;
        }
    }
}

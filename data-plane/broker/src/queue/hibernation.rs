//! How a queue group sleeps and wakes (see [`crate::raft::slot`]).
//!
//! Asleep, a queue is its [`QueueSummary`] — depths, settings and when its
//! next timer falls due — in memory and in `asleep.json` in its directory.
//! The file is what lets a restarted broker leave a sleeping queue closed:
//! written (durably) only after the group was closed, and removed (durably)
//! before it is opened again, so a queue whose file exists has not changed
//! since. A group directory without the file belongs to a queue that was
//! awake when the broker stopped: it is opened at start, which also
//! releases the push consumers the ended process left registered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_queue::{QueueSettings, Stats};

use super::activity::Activity;
use super::group::{GroupOutlets, GroupSpec, QueueGroup};
use crate::raft::slot::{Hibernate, Opener, Slot};

/// The file a sleeping queue leaves in its directory.
const MARKER: &str = "asleep.json";
/// A queue whose next timer falls due sooner than this stays awake.
const TIMER_MARGIN_MS: u64 = 2_000;
/// Entries applied since the last snapshot above which a queue snapshots
/// before it sleeps, so waking restores a snapshot instead of replaying.
const SNAPSHOT_BEFORE_SLEEP: u64 = 64;

/// What a sleeping queue answers without being opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    pub stats: Stats,
    pub settings: QueueSettings,
    pub next_timer_ms: Option<u64>,
}

impl QueueSummary {
    /// A queue that was never opened: empty.
    pub fn empty(settings: QueueSettings) -> Self {
        QueueSummary {
            stats: Stats::default(),
            settings,
            next_timer_ms: None,
        }
    }
}

impl Hibernate for QueueGroup {
    type Summary = QueueSummary;

    fn may_sleep(&self, now_ms: u64) -> bool {
        self.view().read(|q| {
            q.outbox().next().is_none()
                && q.next_timer_ms()
                    .is_none_or(|due| due > now_ms + TIMER_MARGIN_MS)
        })
    }

    async fn sleep(&self) -> QueueSummary {
        self.stop_tasks();
        let unsnapshotted = self
            .view()
            .applied_index()
            .saturating_sub(self.view().snapshot_index());
        if unsnapshotted > SNAPSHOT_BEFORE_SLEEP
            && let Err(err) = self.compact().await
        {
            tracing::warn!(group = %self.spec.group_id, error = %err, "snapshot before sleeping failed");
        }
        self.close().await;
        let summary = self.view().read(|q| QueueSummary {
            stats: q.stats(),
            settings: q.settings().clone(),
            next_timer_ms: q.next_timer_ms(),
        });
        let dir = self.dir().to_path_buf();
        let written = summary.clone();
        let outcome = tokio::task::spawn_blocking(move || write_marker(&dir, &written)).await;
        match outcome {
            Ok(Ok(())) => {}
            // Without the file a restart opens the queue: slower, never wrong.
            Ok(Err(err)) => {
                tracing::warn!(group = %self.spec.group_id, error = %err, "recording a sleeping queue failed")
            }
            Err(err) => {
                tracing::warn!(group = %self.spec.group_id, error = %err, "recording a sleeping queue failed")
            }
        }
        tracing::debug!(group = %self.spec.group_id, queue = %self.spec.queue, "queue asleep");
        summary
    }

    async fn stop(&self) {
        self.close().await;
    }

    fn timer_due_ms(summary: &QueueSummary) -> Option<u64> {
        summary.next_timer_ms
    }
}

/// A hosted queue: awake or asleep.
pub type QueueSlot = Slot<QueueGroup>;

/// How a queue slot opens its group: in `dir`, as `spec` says, counting
/// into `activity` (which outlives every wake, so counters do not reset).
pub fn opener(
    dir: PathBuf,
    node_id: String,
    spec: GroupSpec,
    outlets: GroupOutlets,
    activity: Arc<Activity>,
) -> Opener<QueueGroup> {
    Box::new(move |_summary| {
        let (dir, node_id, spec, outlets, activity) = (
            dir.clone(),
            node_id.clone(),
            spec.clone(),
            outlets.clone(),
            activity.clone(),
        );
        Box::pin(async move {
            let marker_dir = dir.clone();
            let slept = tokio::task::spawn_blocking(move || remove_marker(&marker_dir)).await??;
            let group =
                QueueGroup::open_with(&dir, &node_id, spec, outlets, activity, !slept).await?;
            tracing::debug!(group = %group.spec.group_id, queue = %group.spec.queue, "queue awake");
            Ok(group)
        })
    })
}

/// What a restarting broker finds in a queue's directory.
pub enum Found {
    /// No directory: the queue was never opened.
    Nothing,
    /// It slept when the broker stopped.
    Asleep(Box<QueueSummary>),
    /// It was awake (or its file is unreadable): open it now.
    Awake,
}

/// Looks into `dir`; blocking.
pub fn find(dir: &Path) -> Found {
    if !dir.exists() {
        return Found::Nothing;
    }
    let path = dir.join(MARKER);
    let Ok(bytes) = std::fs::read(&path) else {
        return Found::Awake;
    };
    match serde_json::from_slice(&bytes) {
        Ok(summary) => Found::Asleep(Box::new(summary)),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "unreadable sleep record; opening the queue");
            Found::Awake
        }
    }
}

fn write_marker(dir: &Path, summary: &QueueSummary) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(summary).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{MARKER}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(MARKER))?;
    sync_dir(dir)
}

/// Removes the sleep record durably; true when there was one.
fn remove_marker(dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(dir.join(MARKER)) {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(true)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> QueueSettings {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }

    #[test]
    fn a_sleep_record_round_trips_and_removing_it_says_whether_it_was_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("never-opened");
        assert!(matches!(find(&missing), Found::Nothing));
        assert!(matches!(find(dir.path()), Found::Awake));
        let mut summary = QueueSummary::empty(settings());
        summary.stats.ready = 7;
        summary.next_timer_ms = Some(42);
        write_marker(dir.path(), &summary).expect("write");
        match find(dir.path()) {
            Found::Asleep(found) => assert_eq!(*found, summary),
            _ => panic!("the record was not found"),
        }
        assert!(remove_marker(dir.path()).expect("remove"));
        assert!(!remove_marker(dir.path()).expect("remove again"));
        assert!(matches!(find(dir.path()), Found::Awake));
        std::fs::write(dir.path().join(MARKER), b"{not json").expect("write");
        assert!(matches!(find(dir.path()), Found::Awake));
    }
}

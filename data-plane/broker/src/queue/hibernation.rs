//! How a queue group sleeps and wakes (see [`crate::raft::slot`]).
//!
//! Asleep, a queue is its [`QueueSummary`] — depths, settings and when its
//! next timer falls due — in memory and in its sleep record
//! ([`crate::raft::sleep_record`]). A queue whose directory has no record
//! was awake when the broker stopped: it is opened at start, which also
//! releases the push consumers the ended process left registered.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_queue::{QueueSettings, Stats};

use super::activity::Activity;
use super::group::{GroupOutlets, GroupSpec, QueueGroup};
use crate::raft::sleep_record;
use crate::raft::slot::{Hibernate, Opener, Slot};

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
        sleep_record::keep(self.dir(), summary.clone(), &self.spec.group_id).await;
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
            let record_dir = dir.clone();
            let slept =
                tokio::task::spawn_blocking(move || sleep_record::remove(&record_dir)).await??;
            let group =
                QueueGroup::open_with(&dir, &node_id, spec, outlets, activity, !slept).await?;
            tracing::debug!(group = %group.spec.group_id, queue = %group.spec.queue, "queue awake");
            Ok(group)
        })
    })
}

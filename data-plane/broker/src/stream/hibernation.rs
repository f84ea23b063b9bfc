//! How a stream partition sleeps and wakes (see [`crate::raft::slot`]).
//!
//! Asleep, a partition is its [`PartitionSummary`] — bounds, stored bytes
//! and, on partition 0, the consumer groups' state (so lag is still
//! reported) — in memory and in its sleep record. Partition 0 stays awake
//! while any consumer group has members (their sessions run out on its
//! clock). A partition with time retention and records wakes now and then
//! (half the retention, at least a second, at most an hour: retention frees
//! whole segments, so finer checks would free nothing sooner) to apply it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sluice_stream::GroupCoordinator;

use super::partition::{PartitionGroup, PartitionSpec};
use super::timer::Retention;
use super::traffic::PartitionTraffic;
use crate::raft::slot::{Hibernate, Opener, Slot};
use crate::raft::{now_ms, sleep_record};

/// Entries applied since the last snapshot above which a partition
/// snapshots before it sleeps.
const SNAPSHOT_BEFORE_SLEEP: u64 = 64;
/// Bounds of how long a sleeping partition with time retention sleeps.
const RETENTION_WAKE_MIN_MS: u64 = 1_000;
const RETENTION_WAKE_MAX_MS: u64 = 3_600_000;

/// What a sleeping partition answers without being opened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionSummary {
    pub earliest_offset: u64,
    pub end_offset: u64,
    pub high_watermark: u64,
    pub log_bytes: u64,
    pub record_bytes: u64,
    /// Partition 0's consumer groups.
    pub coordinator: Option<GroupCoordinator>,
    /// When retention must be looked at again.
    pub wake_at_ms: Option<u64>,
}

impl Hibernate for PartitionGroup {
    type Summary = PartitionSummary;

    fn may_sleep(&self, _now_ms: u64) -> bool {
        self.view()
            .coordinator(|c| c.groups().values().all(|g| g.members().is_empty()))
            .unwrap_or(true)
    }

    async fn sleep(&self) -> PartitionSummary {
        self.stop_tasks();
        if self.unsnapshotted_entries() > SNAPSHOT_BEFORE_SLEEP
            && let Err(err) = self.compact().await
        {
            tracing::warn!(group = %self.spec.group_id, error = %err, "snapshot before sleeping failed");
        }
        // Counted while the log is open (the count may read its index).
        let record_bytes = self.record_bytes().unwrap_or_else(|_| self.log_bytes());
        let log_bytes = self.log_bytes();
        self.close().await;
        let (earliest_offset, end_offset, high_watermark) = self
            .view()
            .read(|p| (p.earliest_offset(), p.end_offset(), p.high_watermark()));
        let retention_ms = self.retention().retention_ms;
        let wake_at_ms = retention_ms
            .filter(|_| earliest_offset < end_offset)
            .map(|ms| now_ms() + (ms / 2).clamp(RETENTION_WAKE_MIN_MS, RETENTION_WAKE_MAX_MS));
        let summary = PartitionSummary {
            earliest_offset,
            end_offset,
            high_watermark,
            log_bytes,
            record_bytes,
            coordinator: self.view().coordinator(Clone::clone),
            wake_at_ms,
        };
        sleep_record::keep(self.dir(), summary.clone(), &self.spec.group_id).await;
        tracing::debug!(group = %self.spec.group_id, stream = %self.spec.stream, partition = self.spec.partition, "partition asleep");
        summary
    }

    async fn stop(&self) {
        self.close().await;
    }

    fn timer_due_ms(summary: &PartitionSummary) -> Option<u64> {
        summary.wake_at_ms
    }
}

/// A hosted partition: awake or asleep.
pub type PartitionSlot = Slot<PartitionGroup>;

/// How a partition slot opens its group: in `dir`, as `spec` says, with the
/// stream's current `retention`, counting into `traffic` (which outlives
/// every wake).
pub fn opener(
    dir: PathBuf,
    node_id: String,
    spec: PartitionSpec,
    segment_bytes: u64,
    retention: Arc<Mutex<Retention>>,
    traffic: Arc<PartitionTraffic>,
) -> Opener<PartitionGroup> {
    Box::new(move |_summary| {
        let (dir, node_id, mut spec, traffic) =
            (dir.clone(), node_id.clone(), spec.clone(), traffic.clone());
        spec.retention = *retention.lock().unwrap_or_else(|e| e.into_inner());
        Box::pin(async move {
            let record_dir = dir.clone();
            tokio::task::spawn_blocking(move || sleep_record::remove(&record_dir)).await??;
            let group =
                PartitionGroup::open_with(&dir, &node_id, spec, segment_bytes, traffic).await?;
            tracing::debug!(group = %group.spec.group_id, "partition awake");
            Ok(group)
        })
    })
}

//! A stream partition's timer task: while this node leads the partition
//! group it periodically
//!
//! - computes the retention point from the stream's `retention_ms` (the
//!   storage's time index) and `retention_bytes` (whole produced batches,
//!   counted in their stored bytes: entries without records — partition 0's
//!   group heartbeats and commits, `Retain`, ... — do not count) and
//!   proposes `Retain` when it moved forward;
//! - proposes `ExpireProducers` now and then, so idle producers' idempotence
//!   state does not pile up;
//! - on partition 0, proposes the group coordinator's `Tick` when a member's
//!   session ran out, so it leaves without waiting for another group command.
//!
//! `Retain` only moves the earliest offset (fetches below it answer 416);
//! the segments it released are deleted by a compaction (snapshot, then a
//! Raft purge below the first live batch) once a whole sealed segment is
//! below it, or when many entries went unsnapshotted (restart replay time).

use std::sync::Arc;
use std::time::Duration;

use sluice_storage::SegmentLog;
use sluice_stream::{Command, GroupCommand, StreamSettings};
use tokio_util::sync::CancellationToken;

use super::partition::{PartitionGroup, batch_len};
use super::state_machine::{PartitionOutcome, PartitionView};
use crate::raft::group::GroupError;
use crate::raft::now_ms;

/// How often the timer looks at the partition.
const PERIOD: Duration = Duration::from_secs(2);
/// Entries after which a snapshot is taken even if no segment can be freed.
const SNAPSHOT_AFTER_ENTRIES: u64 = 65_536;
/// How often idle producers are expired (every this many periods).
const EXPIRE_EVERY: u32 = 300;
/// Kafka's default `producer.id.expiration.ms`: a producer silent for a
/// week forgets its sequence numbers (and starts again at 0).
const PRODUCER_IDLE_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// The stream's retention settings (from its spec; `None` keeps forever).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

impl Retention {
    /// The retention settings of a stream.
    pub fn of(settings: &StreamSettings) -> Retention {
        Retention {
            retention_ms: settings.retention_ms,
            retention_bytes: settings.retention_bytes,
        }
    }

    fn is_unbounded(&self) -> bool {
        self.retention_ms.is_none() && self.retention_bytes.is_none()
    }
}

pub(super) async fn run(group: Arc<PartitionGroup>, stop: CancellationToken) {
    let mut round: u32 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PERIOD) => {}
        }
        if !group.is_leader() {
            continue;
        }
        round = round.wrapping_add(1);
        if let Err(err) = tick(&group, round).await {
            tracing::debug!(group = %group.spec.group_id, error = %err, "stream timer failed");
        }
    }
}

/// One timer round on the leader.
async fn tick(group: &Arc<PartitionGroup>, round: u32) -> Result<(), GroupError> {
    if group.spec.partition == 0 && session_expired(group, now_ms()) {
        let outcome = group.propose_group(GroupCommand::Tick).await?;
        note_rejected(group, "tick", outcome);
    }
    if round.is_multiple_of(EXPIRE_EVERY) {
        let idle_ms = PRODUCER_IDLE_MS;
        let outcome = group
            .propose(Command::ExpireProducers { idle_ms }, Vec::new())
            .await?;
        note_rejected(group, "expire producers", outcome);
    }
    retain(group).await?;
    if compaction_due(group)
        && let Some(upto) = group.compact().await?
    {
        tracing::debug!(group = %group.spec.group_id, purged_upto = upto, "stream log compacted");
    }
    Ok(())
}

/// Whether a compaction would free a whole sealed segment, or the log has
/// gone long without a snapshot.
fn compaction_due(group: &PartitionGroup) -> bool {
    if group.unsnapshotted_entries() >= SNAPSHOT_AFTER_ENTRIES {
        return true;
    }
    let keep_from = group
        .view()
        .read(|p| p.release_index().unwrap_or_else(|| p.applied_index() + 1));
    group
        .log()
        .segments()
        .first()
        .is_some_and(|first| first.sealed && first.next_offset <= keep_from)
}

/// Whether some consumer-group member's session ran out (the coordinator's
/// `Tick` would expel it). Ticking only then keeps an idle stream's log from
/// growing by an entry every period.
fn session_expired(group: &PartitionGroup, now_ms: u64) -> bool {
    group
        .view()
        .coordinator(|c| {
            c.groups().values().any(|g| {
                g.members()
                    .values()
                    .any(|m| now_ms.saturating_sub(m.last_heartbeat_ms) > m.session_timeout_ms)
            })
        })
        .unwrap_or(false)
}

/// Logs a timer command the state machine refused (it changed nothing).
fn note_rejected(group: &PartitionGroup, what: &str, outcome: PartitionOutcome) {
    if let Err(err) = outcome {
        tracing::debug!(group = %group.spec.group_id, error = %err, "stream timer {what} refused");
    }
}

/// Proposes `Retain` when the retention point moved past the earliest offset.
async fn retain(group: &Arc<PartitionGroup>) -> Result<(), GroupError> {
    let retention = group.retention();
    if retention.is_unbounded() {
        return Ok(());
    }
    let log = group.log().clone();
    let view = group.view().clone();
    let now = now_ms();
    let point =
        tokio::task::spawn_blocking(move || retention_point_of(&log, &view, retention, now))
            .await
            .map_err(|e| GroupError::Storage(e.to_string()))??;
    let earliest = group.view().read(|p| p.earliest_offset());
    if point > earliest {
        let retain = Command::Retain {
            earliest_offset: point,
        };
        let outcome = group.propose(retain, Vec::new()).await?;
        note_rejected(group, "retain", outcome);
        tracing::debug!(group = %group.spec.group_id, earliest_offset = point, "stream retention");
    }
    Ok(())
}

/// The retention point of the partition: the first offset whose batch is
/// within both the time window and the byte budget.
fn retention_point_of(
    log: &SegmentLog,
    view: &PartitionView,
    retention: Retention,
    now_ms: u64,
) -> Result<u64, GroupError> {
    let storage = |e: sluice_storage::Error| GroupError::Storage(e.to_string());
    let (earliest, end) = view.read(|p| (p.earliest_offset(), p.end_offset()));
    let min_index = match retention.retention_ms {
        Some(ms) => {
            let cutoff = i64::try_from(now_ms.saturating_sub(ms)).unwrap_or(i64::MAX);
            match log.offset_for_timestamp(cutoff).map_err(storage)? {
                Some(index) => index,
                None => return Ok(end), // every batch is older than the window
            }
        }
        None => 0,
    };
    // Retention by bytes counts the produced batches only: group commands,
    // `Retain` and the other entries without records (partition 0 carries
    // every heartbeat and commit of the stream's groups) never evict records.
    let min_index = match retention.retention_bytes {
        Some(budget) => {
            let spans: Vec<u64> =
                view.read(|p| p.batches_from(earliest).map(|s| s.log_index).collect());
            let mut failed = None;
            let cut = first_kept_by_bytes(spans.into_iter().rev(), budget, |index| {
                batch_len(log, index).unwrap_or_else(|err| {
                    failed.get_or_insert(err);
                    0 // never retain past what we could not measure
                })
            });
            if let Some(err) = failed {
                return Err(storage(err));
            }
            match cut {
                Some(index) => min_index.max(index),
                None => return Ok(end), // not even the newest batch fits
            }
        }
        None => min_index,
    };
    let locate = |offset: u64| view.read(|p| p.log_index_for_offset(offset));
    Ok(retention_point(earliest, end, locate, |index| {
        index >= min_index
    }))
}

/// Walking the produced batches' log indexes newest first, the oldest one
/// such that it and every newer batch fit in `budget` bytes (`len` gives a
/// batch's stored length): batches below it are retained away. `None` when
/// not even the newest fits; `Some(0)` (keep all) when every batch fits.
pub fn first_kept_by_bytes(
    newest_first: impl Iterator<Item = u64>,
    budget: u64,
    mut len: impl FnMut(u64) -> u64,
) -> Option<u64> {
    let mut total = 0u64;
    let mut kept = 0;
    for (i, index) in newest_first.enumerate() {
        total = total.saturating_add(len(index));
        if total > budget {
            return (i > 0).then_some(kept);
        }
        kept = index;
    }
    Some(0)
}

/// The smallest offset in `[earliest, end)` whose batch (its log index, by
/// `locate`) is kept by `keep`, or `end` when none is. `keep` must be
/// monotonic: once true for a log index, true for every later one — then
/// the answer is always a batch's first offset (or `end`).
pub fn retention_point(
    earliest: u64,
    end: u64,
    locate: impl Fn(u64) -> Option<u64>,
    mut keep: impl FnMut(u64) -> bool,
) -> u64 {
    let (mut low, mut high) = (earliest, end);
    while low < high {
        let mid = low + (high - low) / 2;
        // An offset no batch holds (cannot happen below end) counts as kept.
        let kept = locate(mid).is_none_or(&mut keep);
        if kept {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of (first offset, record count) at log indexes 1, 2, 3, ….
    fn locator(batches: &[(u64, u64)]) -> impl Fn(u64) -> Option<u64> + '_ {
        move |offset| {
            batches
                .iter()
                .position(|(first, count)| offset >= *first && offset < first + count)
                .map(|i| i as u64 + 1)
        }
    }

    #[test]
    fn retention_point_is_the_first_kept_batch() {
        let batches = [(0, 3), (3, 2), (5, 4), (9, 1)];
        let locate = locator(&batches);
        // Keep log index 3 on: the third batch starts at offset 5.
        assert_eq!(retention_point(0, 10, &locate, |i| i >= 3), 5);
        // Keep everything: the earliest offset stays.
        assert_eq!(retention_point(0, 10, &locate, |_| true), 0);
        assert_eq!(retention_point(4, 10, &locate, |_| true), 4);
        // Keep nothing: everything up to the end goes.
        assert_eq!(retention_point(0, 10, &locate, |_| false), 10);
        // An empty partition.
        assert_eq!(retention_point(0, 0, &locate, |_| false), 0);
    }

    #[test]
    fn retention_point_by_bytes_keeps_whole_batches() {
        // Four batches of 100 bytes each (log indexes 1..=4); a budget of
        // 250 bytes keeps the last two whole batches.
        let batches = [(0, 10), (10, 10), (20, 10), (30, 10)];
        let locate = locator(&batches);
        let bytes_from = |index: u64| (5 - index) * 100;
        assert_eq!(
            retention_point(0, 40, &locate, |i| bytes_from(i) <= 250),
            20
        );
        assert_eq!(retention_point(0, 40, &locate, |i| bytes_from(i) <= 400), 0);
        assert_eq!(retention_point(0, 40, &locate, |i| bytes_from(i) <= 99), 40);
    }

    #[test]
    fn first_kept_by_bytes_keeps_the_newest_batches_that_fit() {
        let len = |_| 100;
        // Record batches at log indexes 2, 5, 9 (entries between: group commands).
        let newest_first = || [9u64, 5, 2].into_iter();
        assert_eq!(first_kept_by_bytes(newest_first(), 300, len), Some(0));
        assert_eq!(first_kept_by_bytes(newest_first(), 250, len), Some(5));
        assert_eq!(first_kept_by_bytes(newest_first(), 100, len), Some(9));
        assert_eq!(first_kept_by_bytes(newest_first(), 99, len), None);
        assert_eq!(first_kept_by_bytes(std::iter::empty(), 0, len), Some(0));
    }

    /// Partition 0 carries its groups' commands: a chatty group must not
    /// push its records out of a byte budget they fit in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commands_do_not_count_toward_retention_bytes() {
        use sluice_storage::Record;

        let dir = tempfile::tempdir().expect("tempdir");
        let spec = super::super::partition::PartitionSpec::for_test();
        let group = PartitionGroup::open(dir.path(), "n1", spec, 1 << 20)
            .await
            .expect("open");
        for batch in 0..4 {
            let records = (0..10)
                .map(|i| Record::from_value(format!("record {batch}-{i} {}", "x".repeat(100))))
                .collect();
            let produce = Command::Produce {
                record_count: 10,
                producer: None,
            };
            let outcome = group.propose(produce, records).await.expect("produce");
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        let records_bytes = group.log_bytes();
        // Many group commands after the records (refused, but logged).
        for i in 0..200 {
            let leave = GroupCommand::Leave {
                group: format!("chatty-group-{i}"),
                member_id: "m".into(),
            };
            let _refused = group.propose_group(leave).await.expect("group command");
        }
        assert!(group.log_bytes() > 2 * records_bytes);
        let retention = Retention {
            retention_ms: None,
            retention_bytes: Some(records_bytes),
        };
        let point = retention_point_of(group.log(), group.view(), retention, now_ms())
            .expect("retention point");
        assert_eq!(point, 0, "every record fits in the budget");
        // A budget below the records' bytes drops the oldest whole batches.
        let retention = Retention {
            retention_ms: None,
            retention_bytes: Some(records_bytes / 2),
        };
        let point = retention_point_of(group.log(), group.view(), retention, now_ms())
            .expect("retention point");
        assert!(
            point > 0 && point < 40 && point.is_multiple_of(10),
            "{point}"
        );
        group.close().await;
    }

    #[test]
    fn retention_from_the_stream_spec() {
        let spec: StreamSettings = serde_json::from_value(
            serde_json::json!({"partitions": 3, "retention_ms": 60000, "retention_bytes": null}),
        )
        .expect("settings");
        let retention = Retention::of(&spec);
        assert_eq!(retention.retention_ms, Some(60000));
        assert_eq!(retention.retention_bytes, None);
        // An absent `retention_ms` is the declared default (7 days), as the
        // control plane means it; keeping forever is an explicit `null`.
        let forever: StreamSettings =
            serde_json::from_value(serde_json::json!({"retention_ms": null})).expect("settings");
        assert!(Retention::of(&forever).is_unbounded());
    }
}

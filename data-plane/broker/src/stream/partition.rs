//! One stream partition on this broker: opens the segment log and the
//! state machine under `data_dir/streams/<group_id>/`, starts (or restarts)
//! the openraft group, produces batches and reads records back from the log
//! by the log index `PartitionState::locate` returns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sluice_storage::{Record, SegmentLog};
use sluice_stream::{Command, GroupCommand, GroupCoordinator, PartitionState, TimedCommand};
use tokio_util::sync::CancellationToken;

use super::codec;
use super::state_machine::PartitionRaftConfig;
use super::state_machine::{PartitionMachine, PartitionOutcome, PartitionView};
use super::timer::{self, Retention};
use crate::raft::group::GroupError;
use crate::raft::group::RaftGroup;
use crate::raft::now_ms;

/// What the topology says about a partition hosted here.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    pub group_id: String,
    pub tenant_id: i64,
    pub stream: String,
    pub partition: u32,
    /// The stream's partition count (partition 0 coordinates its consumer groups).
    pub partitions: u32,
    /// Broker node ids of the replicas.
    pub replicas: Vec<String>,
    /// The stream's retention settings when the partition was opened.
    pub retention: Retention,
}

#[cfg(test)]
impl PartitionGroup {
    /// Moves the earliest offset to `earliest_offset` as retention would.
    pub(crate) async fn retain_for_test(&self, earliest_offset: u64) {
        let outcome = self
            .propose(Command::Retain { earliest_offset }, Vec::new())
            .await
            .expect("retain");
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}

#[cfg(test)]
impl PartitionSpec {
    /// Partition 0 of tenant 1's one-partition stream `events`, on node `n1`.
    pub(crate) fn for_test() -> PartitionSpec {
        PartitionSpec {
            group_id: "s1-p0".into(),
            tenant_id: 1,
            stream: "events".into(),
            partition: 0,
            partitions: 1,
            replicas: vec!["n1".into()],
            retention: Retention::default(),
        }
    }
}

/// Bytes before each batch of a raw fetch: the offset of the batch's first
/// record (u64), its record count (u32) and the batch's length (u32), all
/// little-endian like the storage format.
pub const RAW_FRAME_HEADER_LEN: usize = 16;

/// Whole batches read straight from the segment file, each behind a frame
/// header, for a raw fetch.
#[derive(Debug, Default)]
pub struct RawBatches {
    /// Frame header, batch bytes, frame header, batch bytes, ...: the batch
    /// bytes are slices of one read of the file, never decoded.
    pub chunks: Vec<bytes::Bytes>,
    /// The offset after the last record of the last batch.
    pub next_offset: u64,
    pub records: u64,
}

/// A record read back, with its offset.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub offset: u64,
    pub record: Record,
}

pub struct PartitionGroup {
    pub spec: PartitionSpec,
    group: RaftGroup<PartitionRaftConfig, PartitionMachine>,
    view: PartitionView,
    /// The current retention settings (the stream's spec may change).
    retention: Mutex<Retention>,
    /// The live produced batches' stored bytes, counted incrementally.
    record_bytes: Mutex<RecordBytes>,
    /// Produced and fetched counters, for `/metrics` (they outlive a sleep).
    traffic: Arc<super::traffic::PartitionTraffic>,
    dir: PathBuf,
    stop: CancellationToken,
}

/// The stored bytes of the live produced batches, kept up to date by
/// [`PartitionGroup::record_bytes`]: only batches produced since the last
/// count are looked up in the log, and retained-away ones are subtracted.
#[derive(Debug, Default)]
struct RecordBytes {
    /// Log index → stored length of every counted batch.
    lens: BTreeMap<u64, u64>,
    total: u64,
    /// The offset after the last counted batch.
    next_offset: u64,
}

/// The stored length of the batch at log index `index` (0 once purged).
pub(super) fn batch_len(log: &SegmentLog, index: u64) -> sluice_storage::Result<u64> {
    Ok(log
        .slice(index, 1)?
        .filter(|slice| slice.first_offset == index)
        .map_or(0, |slice| slice.len))
}

impl PartitionGroup {
    /// What this partition served since it was opened.
    pub fn traffic(&self) -> &super::traffic::PartitionTraffic {
        &self.traffic
    }

    /// Opens (or creates) the partition in `dir`, initializes a new one with
    /// its replicas, waits for a leader and starts its timer task.
    pub async fn open(
        dir: &Path,
        node_id: &str,
        spec: PartitionSpec,
        segment_bytes: u64,
    ) -> anyhow::Result<Arc<PartitionGroup>> {
        Self::open_with(dir, node_id, spec, segment_bytes, Arc::default()).await
    }

    /// [`PartitionGroup::open`], counting into `traffic`.
    pub async fn open_with(
        dir: &Path,
        node_id: &str,
        spec: PartitionSpec,
        segment_bytes: u64,
        traffic: Arc<super::traffic::PartitionTraffic>,
    ) -> anyhow::Result<Arc<PartitionGroup>> {
        let initial = PartitionMachine {
            partition: PartitionState::new(),
            coordinator: (spec.partition == 0).then(|| GroupCoordinator::new(spec.partitions)),
        };
        let group = RaftGroup::start(dir, node_id, &spec.replicas, segment_bytes, initial).await?;
        let view = PartitionView::new(group.view().clone());
        let group = Arc::new(PartitionGroup {
            retention: Mutex::new(spec.retention),
            record_bytes: Mutex::new(RecordBytes::default()),
            traffic,
            dir: dir.to_path_buf(),
            spec,
            group,
            view,
            stop: CancellationToken::new(),
        });
        tokio::spawn(timer::run(group.clone(), group.stop.clone()));
        Ok(group)
    }

    /// The stream's current retention settings.
    pub fn retention(&self) -> Retention {
        *self.retention.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the stream's new retention settings (its spec changed).
    pub fn set_retention(&self, retention: Retention) {
        *self.retention.lock().unwrap_or_else(|e| e.into_inner()) = retention;
    }

    pub(super) fn log(&self) -> &SegmentLog {
        self.group.log()
    }

    /// The first offset whose batch sits at or after `log_index` (offsets
    /// map to log indexes monotonically, so a binary search over offsets
    /// finds it).
    pub fn offset_at_or_after(&self, log_index: u64) -> u64 {
        self.view().read(|p| {
            let (mut low, mut high) = (p.earliest_offset(), p.end_offset());
            while low < high {
                let mid = low + (high - low) / 2;
                match p.locate(mid) {
                    Some((index, _)) if index < log_index => low = mid + 1,
                    _ => high = mid,
                }
            }
            low
        })
    }

    pub fn view(&self) -> &PartitionView {
        &self.view
    }

    pub fn is_leader(&self) -> bool {
        self.group.is_leader()
    }

    /// Proposes `command` with the produced `records`, stamped with this
    /// node's clock, and answers once it is committed and applied.
    pub async fn propose(
        &self,
        command: Command,
        records: Vec<Record>,
    ) -> Result<PartitionOutcome, GroupError> {
        let command = TimedCommand::new(now_ms(), command);
        let entry = codec::encode_entry(&command, records)
            .map_err(|e| GroupError::Storage(e.to_string()))?;
        self.write(entry).await
    }

    /// Proposes a consumer-group command (partition 0 only).
    pub async fn propose_group(
        &self,
        command: GroupCommand,
    ) -> Result<PartitionOutcome, GroupError> {
        let command = TimedCommand::new(now_ms(), command);
        let entry =
            codec::encode_group_entry(&command).map_err(|e| GroupError::Storage(e.to_string()))?;
        self.write(entry).await
    }

    async fn write(
        &self,
        entry: sluice_storage::raft::Records,
    ) -> Result<PartitionOutcome, GroupError> {
        self.group.write(entry).await
    }

    /// Snapshots the partition and purges the log below its first live
    /// batch (the whole applied log when retention removed every batch):
    /// this is what frees the segments retention released.
    pub async fn compact(&self) -> Result<Option<u64>, GroupError> {
        self.group
            .compact(|m| {
                let partition = &m.partition;
                partition
                    .release_index()
                    .unwrap_or(partition.applied_index() + 1)
            })
            .await
    }

    /// Bytes in the partition's segment files.
    pub fn log_bytes(&self) -> u64 {
        self.group.log().segments().iter().map(|s| s.len).sum()
    }

    /// The stored bytes of the produced batches still readable: what the
    /// tenant stores here. Entries without records — partition 0's group
    /// heartbeats and commits above all, `Retain`, blank entries — are the
    /// service's bookkeeping, not tenant data (so, like `retention_bytes`,
    /// the storage quota does not count them). Blocking: it may read the
    /// log's index for batches produced since the last call.
    pub fn record_bytes(&self) -> Result<u64, GroupError> {
        let mut counted = self.record_bytes.lock().unwrap_or_else(|e| e.into_inner());
        let from = counted.next_offset;
        let (first_live, fresh) = self.view.read(|p| {
            let first = p
                .batches_from(p.earliest_offset())
                .next()
                .map(|s| s.log_index);
            let fresh: Vec<sluice_stream::BatchSpan> = p
                .batches_from(from)
                .filter(|s| s.base_offset >= from)
                .collect();
            (first, fresh)
        });
        // Batches below the first live one were retained away.
        let kept = match first_live {
            Some(first) => counted.lens.split_off(&first),
            None => BTreeMap::new(),
        };
        let dropped: u64 = counted.lens.values().sum();
        counted.lens = kept;
        counted.total = counted.total.saturating_sub(dropped);
        for span in fresh {
            if first_live.is_some_and(|first| span.log_index >= first) {
                let len = batch_len(self.log(), span.log_index)
                    .map_err(|e| GroupError::Storage(e.to_string()))?;
                counted.lens.insert(span.log_index, len);
                counted.total += len;
            }
            counted.next_offset = span.base_offset + u64::from(span.record_count);
        }
        Ok(counted.total)
    }

    /// Entries applied since the newest snapshot.
    pub fn unsnapshotted_entries(&self) -> u64 {
        let view = self.group.view();
        view.applied_index().saturating_sub(view.snapshot_index())
    }

    /// The first log index at or after which a batch's newest timestamp is
    /// `>= timestamp_ms` (the storage's time index), if any.
    pub async fn log_index_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<u64>, GroupError> {
        let log = self.group.log().clone();
        tokio::task::spawn_blocking(move || log.offset_for_timestamp(timestamp_ms))
            .await
            .map_err(|e| GroupError::Storage(e.to_string()))?
            .map_err(|e| GroupError::Storage(e.to_string()))
    }

    /// Up to `max_records` records from `offset` (at least one when any
    /// exists, then about `max_bytes` of values), read batch by batch from
    /// the log. Entries holding no live batch (retries answered from the
    /// producer state, retention, membership) are skipped.
    pub async fn read(
        &self,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRecord>, GroupError> {
        let Some((log_index, _)) = self.view.read(|p| p.locate(offset)) else {
            return Ok(Vec::new());
        };
        let log = self.group.log().clone();
        let batches = tokio::task::spawn_blocking(move || log.read(log_index, max_bytes))
            .await
            .map_err(|e| GroupError::Storage(e.to_string()))?
            .map_err(|e| GroupError::Storage(e.to_string()))?;
        let mut out = Vec::new();
        let mut next = offset;
        let mut bytes = 0usize;
        for batch in batches {
            let Some((index, slot)) = self.view.read(|p| p.locate(next)) else {
                break;
            };
            if batch.offset < index {
                continue;
            }
            if batch.offset > index {
                break; // the read started past it (cannot happen) — stop here
            }
            for record in codec::produced(batch.records)
                .into_iter()
                .skip(slot as usize)
            {
                if out.len() >= max_records || (!out.is_empty() && bytes >= max_bytes) {
                    return Ok(out);
                }
                bytes += record.value.len();
                out.push(StoredRecord {
                    offset: next,
                    record,
                });
                next += 1;
            }
        }
        Ok(out)
    }

    /// The produced batches from the one holding `offset` on, about
    /// `max_bytes` of them (at least one when any exists), as stored: one
    /// positional read of a segment file range, cut at batch boundaries.
    /// Entries without records (group commands, retention, membership) in
    /// that range are left out. Nothing is decoded or re-encoded; the
    /// client checks each batch's CRC and decodes it (record 0 is the
    /// partition command, records 1.. the produced records).
    pub async fn read_raw(&self, offset: u64, max_bytes: usize) -> Result<RawBatches, GroupError> {
        let Some((log_index, _)) = self.view.read(|p| p.locate(offset)) else {
            return Ok(RawBatches {
                next_offset: offset,
                ..RawBatches::default()
            });
        };
        let log = self.group.log().clone();
        let read = tokio::task::spawn_blocking(move || {
            let slice = log.slice(log_index, max_bytes as u64)?;
            slice
                .map(|slice| {
                    Ok::<_, sluice_storage::Error>((slice.read_bytes()?, slice.next_offset))
                })
                .transpose()
        })
        .await
        .map_err(|e| GroupError::Storage(e.to_string()))?
        .map_err(|e| GroupError::Storage(e.to_string()))?;
        let Some((bytes, slice_end)) = read else {
            return Err(GroupError::Storage(format!(
                "log entry {log_index} is gone"
            )));
        };
        let spans: Vec<sluice_stream::BatchSpan> = self.view.read(|p| {
            p.batches_from(offset)
                .take_while(|span| span.log_index < slice_end)
                .collect()
        });
        frame_batches(bytes::Bytes::from(bytes), &spans, offset)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the partition's timer task.
    pub fn stop_tasks(&self) {
        self.stop.cancel();
    }

    /// Stops the timer and the Raft group (the log is closed once dropped).
    pub async fn close(&self) {
        self.stop.cancel();
        if let Err(err) = self.group.shutdown().await {
            tracing::warn!(group = %self.spec.group_id, error = %err, "partition shutdown failed");
        }
    }
}

/// Cuts `bytes` (whole stored batches) at batch boundaries and puts a
/// frame header before each batch that holds one of `spans`.
fn frame_batches(
    bytes: bytes::Bytes,
    spans: &[sluice_stream::BatchSpan],
    offset: u64,
) -> Result<RawBatches, GroupError> {
    let mut out = RawBatches {
        next_offset: offset,
        ..RawBatches::default()
    };
    let mut spans = spans.iter().peekable();
    let mut at = 0;
    while at < bytes.len() {
        let prefix = bytes
            .get(at..at + 12)
            .ok_or_else(|| GroupError::Storage(format!("torn batch prefix at byte {at}")))?;
        let (index, len) = prefix.split_at(8);
        let index = u64::from_le_bytes(index.try_into().unwrap_or_default());
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        if len < 12 || at + len > bytes.len() {
            return Err(GroupError::Storage(format!(
                "batch at byte {at} claims {len} bytes"
            )));
        }
        while spans.next_if(|span| span.log_index < index).is_some() {}
        if let Some(span) = spans.next_if(|span| span.log_index == index) {
            let mut header = Vec::with_capacity(RAW_FRAME_HEADER_LEN);
            header.extend_from_slice(&span.base_offset.to_le_bytes());
            header.extend_from_slice(&span.record_count.to_le_bytes());
            header.extend_from_slice(&(len as u32).to_le_bytes());
            out.chunks.push(header.into());
            out.chunks.push(bytes.slice(at..at + len));
            out.next_offset = span.base_offset + u64::from(span.record_count);
            out.records += u64::from(span.record_count);
        }
        at += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    async fn produce(group: &PartitionGroup, batch: u32) {
        let records = (0..10)
            .map(|i| Record::from_value(format!("record {batch}-{i} {}", "x".repeat(200))))
            .collect();
        let command = Command::Produce {
            record_count: 10,
            producer: None,
        };
        let outcome = group.propose(command, records).await.expect("produce");
        assert!(outcome.is_ok(), "{outcome:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_deletes_the_segments_retention_released_and_restart_reads_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let group = PartitionGroup::open(dir.path(), "n1", PartitionSpec::for_test(), 8 * 1024)
            .await
            .expect("open");
        for batch in 0..100 {
            produce(&group, batch).await;
        }
        let segments_before = group.log().segments().len();
        assert!(
            segments_before > 10,
            "small segments roll ({segments_before})"
        );
        group.retain_for_test(700).await;

        let purged_upto = group.compact().await.expect("compact").expect("purged");
        let first_live = group.view().read(|p| p.log_index_for_offset(700));
        assert_eq!(Some(purged_upto + 1), first_live);
        let deadline = Instant::now() + Duration::from_secs(10);
        while group.log().segments().len() * 2 > segments_before {
            assert!(Instant::now() < deadline, "segments were not deleted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first = group.read(700, 5, 1 << 20).await.expect("read");
        assert_eq!(first.first().map(|r| r.offset), Some(700));
        group.close().await;
        drop(group);

        // Restart: the state comes from the snapshot, records from what is left.
        let group = PartitionGroup::open(dir.path(), "n1", PartitionSpec::for_test(), 8 * 1024)
            .await
            .expect("reopen");
        assert_eq!(group.view().read(|p| p.earliest_offset()), 700);
        assert_eq!(group.view().read(|p| p.end_offset()), 1000);
        let records = group.read(700, 1000, 1 << 20).await.expect("read");
        assert_eq!(records.len(), 300);
        assert!(records[0].record.value.starts_with(b"record 70-0 "));
        produce(&group, 100).await;
        assert_eq!(group.view().read(|p| p.end_offset()), 1010);
        group.close().await;
    }

    /// What the storage quota counts: produced batches, never the group
    /// heartbeats partition 0 carries; retained-away batches drop out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_bytes_count_produced_batches_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let group = PartitionGroup::open(dir.path(), "n1", PartitionSpec::for_test(), 1 << 20)
            .await
            .expect("open");
        assert_eq!(group.record_bytes().expect("measure"), 0);
        for batch in 0..4 {
            produce(&group, batch).await;
        }
        let four = group.record_bytes().expect("measure");
        assert!(four > 4 * 10 * 200 && four < group.log_bytes(), "{four}");
        let join = GroupCommand::Join {
            group: "g".into(),
            member_id: None,
            client_id: "c".into(),
            session_timeout_ms: 60_000,
            strategy: sluice_stream::AssignmentStrategy::Range,
        };
        let joined = group.propose_group(join).await.expect("join");
        let Ok(super::super::EntryReply::Group(sluice_stream::GroupApplied {
            result: Ok(sluice_stream::GroupReply::Joined { member_id, .. }),
            ..
        })) = joined
        else {
            panic!("{joined:?}");
        };
        let before = group.log_bytes();
        for _ in 0..300 {
            let heartbeat = GroupCommand::Heartbeat {
                group: "g".into(),
                member_id: member_id.clone(),
                generation: 1,
            };
            let beat = group.propose_group(heartbeat).await.expect("heartbeat");
            assert!(beat.is_ok(), "{beat:?}");
        }
        assert!(group.log_bytes() > before + four, "heartbeats are logged");
        assert_eq!(group.record_bytes().expect("measure"), four);
        produce(&group, 4).await;
        let five = group.record_bytes().expect("measure");
        assert!(five > four);
        group.retain_for_test(20).await;
        let three = group.record_bytes().expect("measure");
        // Five batches of the same size, two retained away.
        assert!(three > 0 && three < four, "{three} of {five}");
        group.close().await;
        drop(group);
        // A restart counts the same from scratch.
        let group = PartitionGroup::open(dir.path(), "n1", PartitionSpec::for_test(), 1 << 20)
            .await
            .expect("reopen");
        assert_eq!(group.record_bytes().expect("measure"), three);
        group.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn raw_reads_are_the_stored_batch_bytes_without_the_entries_holding_no_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let group = PartitionGroup::open(dir.path(), "n1", PartitionSpec::for_test(), 1 << 20)
            .await
            .expect("open");
        for batch in 0..3 {
            produce(&group, batch).await;
        }
        // A group command (partition 0 coordinates groups) between batches.
        let leave = GroupCommand::Leave {
            group: "g".into(),
            member_id: "nobody".into(),
        };
        let left = group.propose_group(leave).await.expect("group command");
        assert!(
            left.is_ok(),
            "the entry applies (the group refuses it): {left:?}"
        );
        for batch in 3..5 {
            produce(&group, batch).await;
        }

        let raw = group.read_raw(25, 1 << 20).await.expect("raw read");
        assert_eq!(
            raw.chunks.len(),
            2 * 3,
            "batches 2, 3 and 4 (offset 25 is in batch 2)"
        );
        assert_eq!(raw.next_offset, 50);
        assert_eq!(raw.records, 30);
        let segment = std::fs::read(&group.log().segments()[0].path).expect("segment file");
        for (frame, (header, batch)) in raw.chunks.chunks(2).map(|c| (&c[0], &c[1])).enumerate() {
            let base = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
            let count = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
            assert_eq!(base, 20 + 10 * frame as u64);
            assert_eq!((count, len as usize), (10, batch.len()));
            // The very bytes of the segment file, checked and decoded by the client.
            assert!(segment.windows(batch.len()).any(|w| w == &batch[..]));
            let (decoded, _) = sluice_storage::format::decode_batch(batch).expect("valid batch");
            let values: Vec<String> = decoded.records[1..]
                .iter()
                .map(|r| String::from_utf8_lossy(&r.value).into_owned())
                .collect();
            assert!(values[0].starts_with(&format!("record {}-0 ", 2 + frame)));
        }
        let none = group.read_raw(50, 1 << 20).await.expect("at the end");
        assert!(none.chunks.is_empty());
        assert_eq!(none.next_offset, 50);
        group.close().await;
    }
}

//! End-to-end behaviour of one segment log: append, read, roll, reopen, truncate,
//! release and retention, with index lookups checked at every segment boundary.

use std::time::Duration;

use sluice_storage::{
    Batch, Error, FsyncPolicy, LogConfig, Record, RetentionPolicy, SegmentLog, WriterMode,
};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn batch(i: u64, ts: i64) -> Batch {
    Batch::data(vec![Record {
        timestamp: ts,
        key: Some(format!("k{i}").into_bytes()),
        headers: vec![("n".into(), i.to_le_bytes().to_vec())],
        value: vec![i as u8; (i % 50) as usize + 10],
    }])
}

#[tokio::test]
async fn append_read_reopen_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), small_config()).await.unwrap();
    for i in 0..200u64 {
        assert_eq!(log.append(&batch(i, 1000 + i as i64)).await.unwrap(), i);
    }
    assert!(log.segments().len() > 5, "expected rolls");
    let check = |log: &SegmentLog| {
        for i in 0..200u64 {
            let got = log.read(i, 1).unwrap();
            assert_eq!(got[0].offset, i);
            assert_eq!(got[0].records, batch(i, 1000 + i as i64).records);
            assert_eq!(log.offset_for_timestamp(1000 + i as i64).unwrap(), Some(i));
        }
        assert_eq!(log.offset_for_timestamp(999).unwrap(), Some(0));
        assert_eq!(log.offset_for_timestamp(1200).unwrap(), None);
        assert!(log.read(200, 1 << 20).unwrap().is_empty());
        let all = log.read(0, usize::MAX).unwrap();
        assert_eq!(all.len(), 200);
        assert!(all.iter().enumerate().all(|(i, b)| b.offset == i as u64));
        log.verify().unwrap();
    };
    check(&log);
    log.close().await.unwrap();
    let log = SegmentLog::open(dir.path(), small_config()).await.unwrap();
    check(&log);
    assert_eq!(log.append(&batch(200, 2000)).await.unwrap(), 200);
}

#[tokio::test]
async fn slices_cover_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), small_config()).await.unwrap();
    for i in 0..50u64 {
        log.append(&batch(i, i as i64)).await.unwrap();
    }
    let mut offset = 0;
    let mut seen = 0;
    while let Some(slice) = log.slice(offset, 300).unwrap() {
        assert_eq!(slice.first_offset, offset);
        let buf = slice.read_bytes().unwrap();
        assert_eq!(buf.len() as u64, slice.len);
        let mut at = 0;
        while at < buf.len() {
            let (b, n) = sluice_storage::format::decode_batch(&buf[at..]).unwrap();
            assert_eq!(b.offset, offset);
            offset += 1;
            seen += 1;
            at += n;
        }
        assert_eq!(slice.next_offset, offset);
    }
    assert_eq!(seen, 50);
}

#[tokio::test]
async fn truncate_and_release_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), small_config()).await.unwrap();
    for i in 0..100u64 {
        log.append(&batch(i, i as i64)).await.unwrap();
    }
    // Truncate in the middle of a sealed segment, then keep appending.
    log.truncate(37).await.unwrap();
    assert_eq!(log.next_offset(), 37);
    assert_eq!(log.last_batch().unwrap().offset, 36);
    assert!(log.read(37, 1 << 20).unwrap().is_empty());
    for i in 37..60u64 {
        assert_eq!(log.append(&batch(i + 1000, i as i64)).await.unwrap(), i);
    }
    // Release a prefix: offsets below 45 disappear, whole segments are deleted.
    let before = log.segments().len();
    log.release_below(45).await.unwrap();
    assert_eq!(log.start_offset(), 45);
    assert!(log.segments().len() < before);
    assert_eq!(log.read(0, 1).unwrap()[0].offset, 45);
    log.close().await.unwrap();

    let log = SegmentLog::open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.start_offset(), 45);
    assert_eq!(log.next_offset(), 60);
    assert_eq!(log.read(50, 1).unwrap()[0].records, batch(1050, 50).records);
    // Release beyond the end: the log restarts there (Raft snapshot install).
    log.release_below(500).await.unwrap();
    assert_eq!(log.next_offset(), 500);
    assert!(log.read(0, 1 << 20).unwrap().is_empty());
    assert_eq!(log.append(&batch(1, 1)).await.unwrap(), 500);
    log.close().await.unwrap();
    let log = SegmentLog::open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.start_offset(), 500);
    assert_eq!(log.read(0, 1).unwrap()[0].offset, 500);
    // Truncate everything.
    log.truncate(0).await.unwrap();
    assert_eq!(log.next_offset(), 500);
    assert!(log.last_batch().is_none());
}

#[tokio::test]
async fn explicit_offsets_allow_gaps_but_not_going_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), small_config()).await.unwrap();
    let mut b = batch(0, 0);
    b.offset = 5;
    assert_eq!(log.append_at(&b).await.unwrap(), 5);
    b.offset = 9;
    assert_eq!(log.append_at(&b).await.unwrap(), 9);
    b.offset = 9;
    assert!(matches!(
        log.append_at(&b).await,
        Err(sluice_storage::Error::OffsetOutOfOrder {
            requested: 9,
            next: 10
        })
    ));
    assert_eq!(log.read(6, 1).unwrap()[0].offset, 9);
    assert_eq!(log.append(&b).await.unwrap(), 10);
}

#[tokio::test]
async fn retention_by_size_and_age_keeps_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), small_config()).await.unwrap();
    let now = sluice_storage::format::now_ms();
    for i in 0..100u64 {
        // The first half is a day old.
        let ts = if i < 50 { now - 86_400_000 } else { now };
        log.append(&batch(i, ts)).await.unwrap();
    }
    let out = log
        .apply_retention(&RetentionPolicy {
            max_age: Some(Duration::from_secs(3600)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!out.deleted.is_empty());
    assert!(out.start_offset <= 50, "deleted a segment with fresh data");
    assert!(out.deleted.iter().all(|s| s.next_offset <= 50));
    let out = log
        .apply_retention(&RetentionPolicy {
            max_bytes: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!out.deleted.is_empty());
    let segs = log.segments();
    assert_eq!(segs.len(), 1);
    assert_eq!(log.read(0, 1).unwrap()[0].offset, segs[0].base_offset);
}

#[tokio::test]
async fn concurrent_appenders_share_fsyncs_and_get_distinct_offsets() {
    for writer in [WriterMode::Pooled, WriterMode::Dedicated] {
        concurrent_appenders(LogConfig {
            writer,
            ..LogConfig::default()
        })
        .await;
    }
    // The dedicated writer also honours the interval policy's timed fsync.
    concurrent_appenders(LogConfig {
        writer: WriterMode::Dedicated,
        fsync: FsyncPolicy::Interval(Duration::from_millis(5)),
        ..LogConfig::default()
    })
    .await;
}

async fn concurrent_appenders(config: LogConfig) {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), config.clone()).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..50u64 {
                offsets.push(log.append(&batch(t * 1000 + i, 0)).await.unwrap());
            }
            offsets
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..800).collect::<Vec<_>>());
    log.close().await.unwrap();
    let log = SegmentLog::open(dir.path(), config).await.unwrap();
    assert_eq!(log.next_offset(), 800);
    log.verify().unwrap();
}

#[tokio::test]
async fn a_directory_is_opened_once_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        lock_wait: Duration::from_millis(50),
        ..small_config()
    };
    let log = SegmentLog::open(dir.path(), config.clone()).await.unwrap();
    assert!(matches!(
        SegmentLog::open(dir.path(), config.clone()).await,
        Err(Error::Locked(_))
    ));
    log.close().await.unwrap();
    assert!(matches!(log.append(&batch(0, 0)).await, Err(Error::Closed)));
    SegmentLog::open(dir.path(), config).await.unwrap();
}

#[tokio::test]
async fn segments_roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_max_age: Some(Duration::from_millis(30)),
        ..LogConfig::default()
    };
    let log = SegmentLog::open(dir.path(), config).await.unwrap();
    log.append(&batch(0, 0)).await.unwrap();
    log.append(&batch(1, 0)).await.unwrap();
    assert_eq!(log.segments().len(), 1);
    tokio::time::sleep(Duration::from_millis(40)).await;
    log.append(&batch(2, 0)).await.unwrap();
    let segs = log.segments();
    assert_eq!(segs.len(), 2);
    assert!(segs[0].sealed && !segs[1].sealed);
    assert_eq!((segs[0].next_offset, segs[1].base_offset), (2, 2));
}

#[tokio::test]
async fn interval_fsync_policy_acknowledges_before_the_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(20)),
        ..small_config()
    };
    let log = SegmentLog::open(dir.path(), config.clone()).await.unwrap();
    for i in 0..50u64 {
        assert_eq!(log.append(&batch(i, 0)).await.unwrap(), i);
        assert_eq!(log.read(i, 1).unwrap()[0].offset, i);
    }
    // Let the timed fsync run, then make sure close syncs the rest.
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.append(&batch(50, 0)).await.unwrap();
    log.close().await.unwrap();
    let log = SegmentLog::open(dir.path(), config).await.unwrap();
    assert_eq!(log.next_offset(), 51);
}

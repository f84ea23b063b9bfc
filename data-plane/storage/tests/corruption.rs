//! Damaged files: flipped bytes in sealed segments are reported as typed corruption
//! naming the segment and position; a damaged or torn tail of the active segment is cut
//! off on open; missing or stale indexes are rebuilt.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sluice_storage::{Batch, Error, LogConfig, Record, SegmentLog};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn batch(i: u64) -> Batch {
    Batch::data(vec![Record {
        timestamp: i as i64,
        key: None,
        headers: vec![],
        value: vec![i as u8; 100],
    }])
}

async fn filled(dir: &Path, n: u64) -> SegmentLog {
    let log = SegmentLog::open(dir, config()).await.unwrap();
    for i in 0..n {
        log.append(&batch(i)).await.unwrap();
    }
    log
}

fn flip(path: &Path, position: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, position).unwrap();
    b[0] ^= 0xA5;
    f.write_all_at(&b, position).unwrap();
}

#[tokio::test]
async fn flipped_byte_in_a_sealed_segment_is_reported_with_segment_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 60).await;
    let segs = log.segments();
    assert!(segs.len() >= 3);
    let victim = segs[1].clone();
    log.close().await.unwrap();
    // Inside the third batch of the second segment (batches are 177 bytes).
    flip(&victim.path, 2 * 177 + 80);

    let log = SegmentLog::open(dir.path(), config()).await.unwrap();
    let bad_offset = victim.base_offset + 2;
    match log.read(bad_offset, 1) {
        Err(Error::Corrupt {
            segment,
            position,
            after_offset,
            ..
        }) => {
            assert_eq!(segment, victim.path);
            assert_eq!(position, 2 * 177);
            // Known only when the read passed a good batch before the bad one.
            assert!(after_offset.is_none_or(|a| a == bad_offset - 1));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Batches before the damage, and other segments, still read.
    assert_eq!(
        log.read(victim.base_offset, 1).unwrap()[0].offset,
        victim.base_offset
    );
    assert_eq!(log.read(0, 1).unwrap()[0].offset, 0);
    assert_eq!(log.read(59, 1).unwrap()[0].offset, 59);
    assert!(log.verify().unwrap_err().is_corruption());
    log.close().await.unwrap();

    // Without an index the damage is found at open, and open refuses.
    std::fs::remove_file(victim.path.with_extension("index")).unwrap();
    match SegmentLog::open(dir.path(), config()).await {
        Err(Error::Corrupt {
            segment, position, ..
        }) => {
            assert_eq!(segment, victim.path);
            assert_eq!(position, 2 * 177);
        }
        other => panic!("expected corruption at open, got {other:?}"),
    }
}

#[tokio::test]
async fn damaged_tail_of_the_active_segment_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 30).await;
    let active = log.segments().pop().unwrap();
    let batches_in_active = active.next_offset - active.base_offset;
    assert!(batches_in_active >= 3);
    log.close().await.unwrap();
    // Damage the second-to-last batch of the active segment.
    let second_last = active.len - 2 * 177;
    flip(&active.path, second_last + 60);

    let log = SegmentLog::open(dir.path(), config()).await.unwrap();
    assert_eq!(log.next_offset(), active.next_offset - 2);
    assert_eq!(log.segments().pop().unwrap().len, second_last);
    log.verify().unwrap();
    assert!(
        log.read(active.next_offset - 2, 1 << 20)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        log.append(&batch(99)).await.unwrap(),
        active.next_offset - 2
    );
    assert_eq!(
        log.read(active.next_offset - 2, 1).unwrap()[0].records,
        batch(99).records
    );
}

#[tokio::test]
async fn torn_tail_is_truncated_and_garbage_length_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 5).await;
    let active = log.segments().pop().unwrap();
    log.close().await.unwrap();
    let f = OpenOptions::new().write(true).open(&active.path).unwrap();
    // Half a batch, then a prefix that claims a huge length.
    let half = &batch(7).encode().unwrap()[..90];
    f.write_all_at(half, active.len).unwrap();
    drop(f);
    let log = SegmentLog::open(dir.path(), config()).await.unwrap();
    assert_eq!(log.next_offset(), 5);
    assert_eq!(log.segments().pop().unwrap().len, active.len);
    log.close().await.unwrap();

    let f = OpenOptions::new().write(true).open(&active.path).unwrap();
    let mut prefix = 5u64.to_le_bytes().to_vec();
    prefix.extend_from_slice(&u32::MAX.to_le_bytes());
    f.write_all_at(&prefix, active.len).unwrap();
    drop(f);
    let log = SegmentLog::open(dir.path(), config()).await.unwrap();
    assert_eq!(log.next_offset(), 5);
    log.verify().unwrap();
}

#[tokio::test]
async fn stale_or_damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 60).await;
    let segs = log.segments();
    log.close().await.unwrap();
    // Damage one index, delete another.
    flip(&segs[0].path.with_extension("index"), 20);
    std::fs::remove_file(segs[1].path.with_extension("index")).unwrap();
    let log = SegmentLog::open(dir.path(), config()).await.unwrap();
    for i in 0..60 {
        assert_eq!(log.read(i, 1).unwrap()[0].offset, i);
        assert_eq!(log.offset_for_timestamp(i as i64).unwrap(), Some(i));
    }
    assert!(segs[1].path.with_extension("index").exists());
}

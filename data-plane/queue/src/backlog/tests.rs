//! The backlog's paging, snapshots and spilling, on real files.

use super::page::Record;
use super::*;

fn plain(seq: Seq) -> Plain {
    Plain {
        seq,
        body_ref: BodyRef {
            log_index: 10 + seq / 3,
            slot: (seq % 3) as u32 + 1,
        },
        size: seq * 7,
        published_at_ms: 1_000 + seq,
    }
}

fn filled(seqs: impl IntoIterator<Item = Seq>) -> Backlog {
    let mut backlog = Backlog::default();
    fill(&mut backlog, seqs);
    backlog
}

fn fill(backlog: &mut Backlog, seqs: impl IntoIterator<Item = Seq>) {
    for seq in seqs {
        backlog.push(plain(seq)).unwrap();
    }
}

fn resident(backlog: &Backlog, index: usize) -> &Page {
    match &backlog.pages[index] {
        Slot::Resident(page) => page,
        Slot::Spilled(spilled) => panic!("page {index} is spilled: {spilled:?}"),
    }
}

/// A backlog spilling to `dir` beyond `memory_pages` pages.
fn spilling(dir: &std::path::Path, memory_pages: usize) -> Backlog {
    let mut backlog = Backlog::default();
    backlog.configure(SpillConfig {
        dir: dir.to_path_buf(),
        memory_pages,
    });
    backlog.attach().unwrap();
    backlog
}

fn page_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

const PAGE: u64 = PAGE_RECORDS as u64;

#[test]
fn records_are_twenty_bytes() {
    assert_eq!(std::mem::size_of::<Record>(), 20);
}

#[test]
fn fifo_drain_frees_pages_and_keeps_order() {
    let n = 3 * PAGE + 5;
    let mut backlog = filled(1..=n);
    assert_eq!(backlog.pages.len(), 4);
    for seq in 1..=n {
        assert_eq!(backlog.first(), Some(plain(seq)));
        assert_eq!(backlog.remove(seq), Some(plain(seq)));
        assert!(backlog.pages.len() <= 4 - (seq / PAGE) as usize);
    }
    assert!(backlog.is_empty());
    assert_eq!(backlog.bytes(), 0);
    assert_eq!(backlog.pages.capacity(), 0);
}

#[test]
fn removals_in_the_middle_tombstone_then_compact() {
    let mut backlog = filled(1..=1000);
    for seq in (2..=1000).step_by(2) {
        assert_eq!(backlog.remove(seq), Some(plain(seq)));
    }
    assert_eq!(backlog.remove(2), None);
    assert_eq!(backlog.len(), 500);
    assert!(resident(&backlog, 0).records.len() < 1000, "compacted");
    let odd: Vec<Seq> = backlog.iter().map(|p| p.seq).collect();
    assert_eq!(odd, (1..=1000).step_by(2).collect::<Vec<_>>());
    assert_eq!(backlog.get(501), Some(plain(501)));
    assert_eq!(backlog.get(502), None);
    let bytes: u64 = backlog.iter().map(|p| p.size).sum();
    assert_eq!(backlog.bytes(), bytes);
}

#[test]
fn out_of_order_or_unpackable_messages_are_refused() {
    let mut backlog = filled([5]);
    assert!(backlog.push(plain(4)).is_err());
    assert!(backlog.push(plain(5)).is_err());
    let huge = Plain {
        size: u64::from(u32::MAX) + 1,
        ..plain(6)
    };
    assert!(backlog.push(huge).is_err());
    // Offsets that overflow a page's bases start a new page.
    let far = Plain {
        published_at_ms: u64::MAX / 2,
        ..plain(7)
    };
    backlog.push(far).unwrap();
    assert_eq!(backlog.pages.len(), 2);
    assert_eq!(backlog.get(7), Some(far));
}

#[test]
fn snapshots_round_trip() {
    let mut backlog = filled((1..=5000).filter(|s| s % 7 != 0));
    backlog.remove(1);
    backlog.remove(100);
    let json = serde_json::to_string(&backlog).unwrap();
    let restored: Backlog = serde_json::from_str(&json).unwrap();
    assert!(restored == backlog);
    assert!(json.len() < backlog.len() * 32, "{} bytes", json.len());
}

#[test]
fn a_deep_backlog_keeps_its_budget_in_memory_and_drains_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = spilling(dir.path(), 4);
    let n = 12 * PAGE + 17;
    fill(&mut backlog, 1..=n);
    assert_eq!(backlog.pages(), (4, 13));
    assert_eq!(page_files(dir.path()), 9);
    // The front two and the back stay; the rest went nearest the back first.
    assert!(matches!(backlog.pages[0], Slot::Resident(_)));
    assert!(matches!(backlog.pages[1], Slot::Resident(_)));
    assert!(matches!(backlog.pages[12], Slot::Resident(_)));
    assert_eq!(backlog.len(), n as usize);
    let bytes: u64 = (1..=n).map(|seq| plain(seq).size).sum();
    assert_eq!(backlog.bytes(), bytes);
    assert_eq!(backlog.get(5 * PAGE + 3), Some(plain(5 * PAGE + 3)));
    for seq in 1..=n {
        assert_eq!(backlog.first(), Some(plain(seq)), "seq {seq}");
        assert_eq!(backlog.remove(seq), Some(plain(seq)));
        assert!(backlog.pages().0 <= 4);
    }
    assert!(backlog.is_empty());
    assert_eq!(backlog.fault(), None);
    // Files read back are deleted once a snapshot no longer names them.
    let mark = backlog.sync().unwrap();
    backlog.snapshot_saved(mark);
    assert_eq!(page_files(dir.path()), 0);
}

#[test]
fn a_snapshot_names_spilled_pages_and_restores_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = spilling(dir.path(), 3);
    let n = 20 * PAGE;
    fill(&mut backlog, 1..=n);
    for seq in 1..=10 {
        backlog.remove(seq);
    }
    let mark = backlog.sync().unwrap();
    let json = serde_json::to_string(&backlog).unwrap();
    backlog.snapshot_saved(mark);
    // Three pages inline, seventeen references.
    assert!(json.len() < 4 * PAGE as usize * 30, "{} bytes", json.len());
    assert_eq!(json.matches("\"file\"").count(), 17);

    let mut restored: Backlog = serde_json::from_str(&json).unwrap();
    assert_eq!(restored.len(), backlog.len());
    assert_eq!(restored.bytes(), backlog.bytes());
    restored.configure(backlog.config().unwrap());
    restored.attach().unwrap();
    assert_eq!(restored.pages(), (3, 20));
    assert!(restored == backlog);
    drop(backlog);
    for seq in 11..=n {
        assert_eq!(restored.remove(seq), Some(plain(seq)), "seq {seq}");
    }
    assert!(restored.is_empty());
    assert_eq!(restored.fault(), None);
}

#[test]
fn attaching_deletes_pages_the_state_does_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = spilling(dir.path(), 3);
    fill(&mut backlog, 1..=10 * PAGE);
    let mark = backlog.sync().unwrap();
    let json = serde_json::to_string(&backlog).unwrap();
    backlog.snapshot_saved(mark);
    // Spilled after the snapshot, then the process ended.
    fill(&mut backlog, 10 * PAGE + 1..=14 * PAGE);
    assert_eq!(page_files(dir.path()), 11);
    let mut restored: Backlog = serde_json::from_str(&json).unwrap();
    restored.configure(backlog.config().unwrap());
    restored.attach().unwrap();
    assert_eq!(page_files(dir.path()), 7);
    // Replaying the log spills afresh, under new names.
    fill(&mut restored, 10 * PAGE + 1..=14 * PAGE);
    drop(backlog);
    assert!(restored == filled(1..=14 * PAGE));
    assert_eq!(restored.fault(), None);
}

#[test]
fn a_snapshot_of_the_old_form_spills_once_attached() {
    let dir = tempfile::tempdir().unwrap();
    let backlog = filled(1..=8 * PAGE);
    let json = serde_json::to_string(&backlog).unwrap();
    let mut restored: Backlog = serde_json::from_str(&json).unwrap();
    restored.configure(SpillConfig {
        dir: dir.path().to_path_buf(),
        memory_pages: 3,
    });
    restored.attach().unwrap();
    assert_eq!(restored.pages(), (3, 8));
    assert!(restored == backlog);
}

#[test]
fn a_removal_deep_in_the_backlog_reads_its_page_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = spilling(dir.path(), 3);
    fill(&mut backlog, 1..=6 * PAGE);
    let deep = 3 * PAGE + 5;
    assert!(matches!(backlog.pages[3], Slot::Spilled(_)));
    assert_eq!(backlog.remove(deep), Some(plain(deep)));
    assert_eq!(backlog.get(deep), None);
    assert!(backlog.pages().0 <= 3);
    assert_eq!(backlog.len(), 6 * PAGE as usize - 1);
    let seqs: Vec<Seq> = backlog.iter().map(|p| p.seq).collect();
    let expected: Vec<Seq> = (1..=6 * PAGE).filter(|s| *s != deep).collect();
    assert_eq!(seqs, expected);
}

#[test]
fn a_page_that_cannot_be_read_back_is_a_fault_not_a_wrong_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = spilling(dir.path(), 3);
    fill(&mut backlog, 1..=5 * PAGE);
    let Slot::Spilled(spilled) = backlog.pages[2] else {
        panic!("page 2 should be spilled");
    };
    let path = dir.path().join(format!("{:016x}.page", spilled.id));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    for seq in 1..=PAGE {
        backlog.remove(seq);
    }
    let fault = backlog.fault().expect("a fault");
    assert!(fault.contains("checksum"), "{fault}");
}

#[test]
fn a_spilled_page_without_its_directory_is_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = spilling(dir.path(), 3);
    fill(&mut backlog, 1..=5 * PAGE);
    let json = serde_json::to_string(&backlog).unwrap();
    let restored: Backlog = serde_json::from_str(&json).unwrap();
    assert!(restored.fault().is_some());
}

//! Property test: random appends, truncations, releases, rolls and reopens against an
//! in-memory model of the log; after every step every offset reads back as the model
//! says, including lookups at every segment and index boundary.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_storage::{Batch, LogConfig, Record, SegmentLog};

#[derive(Clone, Debug)]
enum Op {
    Append { sizes: Vec<usize>, gap: u64 },
    Truncate { back: u64 },
    Release { forward: u64 },
    Roll,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec(0usize..300, 1..6), prop_oneof![4 => Just(0u64), 1 => 1u64..4])
            .prop_map(|(sizes, gap)| Op::Append { sizes, gap }),
        2 => (0u64..12).prop_map(|back| Op::Truncate { back }),
        1 => (0u64..8).prop_map(|forward| Op::Release { forward }),
        1 => Just(Op::Roll),
        2 => Just(Op::Reopen),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn record(offset: u64, i: usize, size: usize, salt: u64) -> Record {
    Record {
        timestamp: offset as i64 * 10,
        key: i.is_multiple_of(2).then(|| vec![i as u8; i]),
        headers: vec![],
        value: vec![(offset ^ salt) as u8; size],
    }
}

#[derive(Default)]
struct Model {
    batches: BTreeMap<u64, Vec<Record>>,
    start: u64,
    next: u64,
}

async fn check(log: &SegmentLog, model: &Model) {
    // The log may round its start up to the first segment when nothing lies between.
    let start = log.start_offset();
    assert!(
        start >= model.start,
        "start offset {start} < {}",
        model.start
    );
    assert_eq!(
        model.batches.range(model.start..start).count(),
        0,
        "start offset {start} skips batches"
    );
    assert_eq!(log.next_offset(), model.next, "next offset");
    let all = log.read(0, usize::MAX).unwrap();
    let got: Vec<(u64, Vec<Record>)> = all.into_iter().map(|b| (b.offset, b.records)).collect();
    let want: Vec<(u64, Vec<Record>)> = model
        .batches
        .range(model.start..)
        .map(|(o, r)| (*o, r.clone()))
        .collect();
    assert_eq!(got, want);
    // Every offset, including gaps and released ones, finds the next batch at or after it.
    for offset in 0..model.next + 2 {
        let want = model
            .batches
            .range(offset.max(model.start)..)
            .next()
            .map(|(o, _)| *o);
        let got = log.read(offset, 1).unwrap().first().map(|b| b.offset);
        assert_eq!(got, want, "read({offset})");
        let ts_want = want; // timestamps are offset * 10, so the time lookup agrees
        assert_eq!(
            log.offset_for_timestamp(offset as i64 * 10).unwrap(),
            ts_want,
            "time {offset}"
        );
    }
    assert_eq!(
        log.last_batch().map(|h| h.offset),
        model
            .batches
            .range(model.start..)
            .next_back()
            .map(|(o, _)| *o)
    );
    log.verify().unwrap();
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), config()).await.unwrap();
        let mut model = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { sizes, gap } => {
                    let offset = model.next + gap;
                    let records: Vec<Record> = sizes
                        .iter()
                        .enumerate()
                        .map(|(i, s)| record(offset, i, *s, step as u64))
                        .collect();
                    let mut b = Batch::data(records.clone());
                    b.offset = offset;
                    assert_eq!(log.append_at(&b).await.unwrap(), offset);
                    model.batches.insert(offset, records);
                    model.next = offset + 1;
                }
                Op::Truncate { back } => {
                    let from = model.next.saturating_sub(back);
                    log.truncate(from).await.unwrap();
                    model.batches.retain(|o, _| *o < from.max(model.start));
                    let last = model
                        .batches
                        .range(model.start..)
                        .next_back()
                        .map(|(o, _)| *o + 1);
                    // The log resumes right after what is left, never below its start.
                    let seg_floor = log.segments().last().map_or(0, |s| s.base_offset);
                    model.next = last.unwrap_or(0).max(model.start).max(seg_floor);
                }
                Op::Release { forward } => {
                    let below = model.start + forward;
                    log.release_below(below).await.unwrap();
                    if below > model.start {
                        model.start = below;
                        model.next = model.next.max(below);
                    }
                }
                Op::Roll => log.roll().await.unwrap(),
                Op::Reopen => {
                    log.close().await.unwrap();
                    log = SegmentLog::open(dir.path(), config()).await.unwrap();
                }
            }
            check(&log, &model).await;
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

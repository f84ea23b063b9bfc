//! The partition state machine's rules: dense offsets over the log,
//! locating records, retention, and idempotent producers.

use sluice_stream::{
    BatchSpan, Command, PartitionReply, PartitionState, ProduceResult, ProducerBatch,
    RECENT_BATCHES, StreamError, TimedCommand,
};

fn produce(state: &mut PartitionState, index: u64, records: u32) -> ProduceResult {
    produce_as(state, index, records, None).unwrap()
}

fn produce_as(
    state: &mut PartitionState,
    index: u64,
    records: u32,
    producer: Option<(u64, u32, u64)>,
) -> Result<ProduceResult, StreamError> {
    let producer = producer.map(|(producer_id, epoch, base_sequence)| ProducerBatch {
        producer_id,
        epoch,
        base_sequence,
    });
    let command = Command::Produce {
        record_count: records,
        producer,
    };
    match state.apply(index, TimedCommand::new(1_000, command))? {
        PartitionReply::Produced(r) => Ok(r),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn retain(state: &mut PartitionState, index: u64, earliest: u64) -> Result<(), StreamError> {
    state
        .apply(
            index,
            TimedCommand::new(
                1_000,
                Command::Retain {
                    earliest_offset: earliest,
                },
            ),
        )
        .map(|_| ())
}

#[test]
fn offsets_are_dense_and_independent_of_log_indexes() {
    let mut p = PartitionState::new();
    let a = produce(&mut p, 1, 3);
    p.skip(2).unwrap(); // a group command in this partition's log
    let b = produce(&mut p, 5, 2);
    assert_eq!(a.offsets(), 0..3);
    assert_eq!(b.offsets(), 3..5);
    assert_eq!(p.end_offset(), 5);
    assert_eq!(p.high_watermark(), 5);
    assert_eq!(p.locate(0), Some((1, 0)));
    assert_eq!(p.locate(2), Some((1, 2)));
    assert_eq!(p.locate(3), Some((5, 0)));
    assert_eq!(p.locate(4), Some((5, 1)));
    assert_eq!(p.locate(5), None);
    assert_eq!(p.log_index_for_offset(4), Some(5));
}

#[test]
fn batches_from_an_offset_start_with_the_batch_holding_it() {
    let mut p = PartitionState::new();
    produce(&mut p, 1, 3);
    p.skip(2).unwrap();
    produce(&mut p, 5, 2);
    produce(&mut p, 6, 1);
    let spans: Vec<BatchSpan> = p.batches_from(4).collect();
    assert_eq!(
        spans,
        vec![
            BatchSpan {
                base_offset: 3,
                log_index: 5,
                record_count: 2
            },
            BatchSpan {
                base_offset: 5,
                log_index: 6,
                record_count: 1
            },
        ]
    );
    assert_eq!(p.batches_from(0).count(), 3);
    assert_eq!(p.batches_from(6).count(), 0, "nothing at the end offset");
    retain(&mut p, 7, 4).unwrap();
    assert_eq!(p.batches_from(0).next().map(|s| s.base_offset), Some(3));
}

#[test]
fn fetch_positions_at_and_beyond_the_end() {
    let mut p = PartitionState::new();
    produce(&mut p, 1, 2);
    assert_eq!(p.fetch_position(1), Ok(Some((1, 1))));
    assert_eq!(p.fetch_position(2), Ok(None));
    assert_eq!(
        p.fetch_position(3),
        Err(StreamError::OffsetBeyondEnd {
            requested: 3,
            end: 2
        })
    );
}

#[test]
fn empty_batches_and_regressed_indexes_are_refused() {
    let mut p = PartitionState::new();
    assert_eq!(produce_as(&mut p, 1, 0, None), Err(StreamError::EmptyBatch));
    produce(&mut p, 2, 1);
    assert_eq!(
        produce_as(&mut p, 2, 1, None),
        Err(StreamError::LogIndexRegressed { applied: 2, got: 2 })
    );
    assert_eq!(p.end_offset(), 1);
}

#[test]
fn retention_moves_the_earliest_offset_and_fetches_below_it_fail() {
    let mut p = PartitionState::new();
    produce(&mut p, 1, 3); // 0..3
    produce(&mut p, 2, 3); // 3..6
    produce(&mut p, 3, 3); // 6..9
    retain(&mut p, 4, 4).unwrap();
    assert_eq!(p.earliest_offset(), 4);
    assert_eq!(
        p.fetch_position(2),
        Err(StreamError::OffsetBelowEarliest {
            requested: 2,
            earliest: 4
        })
    );
    assert_eq!(p.locate(3), None);
    assert_eq!(p.locate(4), Some((2, 1)));
    // The batch holding offset 4 is still needed: log prefix below index 2 may go.
    assert_eq!(p.release_index(), Some(2));
    // Never backwards; never beyond the end.
    retain(&mut p, 5, 1).unwrap();
    assert_eq!(p.earliest_offset(), 4);
    assert_eq!(
        retain(&mut p, 6, 10),
        Err(StreamError::RetainBeyondEnd {
            requested: 10,
            end: 9
        })
    );
    retain(&mut p, 7, 9).unwrap();
    assert_eq!(p.release_index(), None);
    assert_eq!(p.fetch_position(9), Ok(None));
}

#[test]
fn idempotent_retry_gets_the_original_offsets() {
    let mut p = PartitionState::new();
    let first = produce_as(&mut p, 1, 3, Some((7, 0, 0))).unwrap();
    let second = produce_as(&mut p, 2, 2, Some((7, 0, 3))).unwrap();
    let retry = produce_as(&mut p, 3, 3, Some((7, 0, 0))).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.offsets(), first.offsets());
    assert_eq!(retry.log_index, 1);
    let retry = produce_as(&mut p, 4, 2, Some((7, 0, 3))).unwrap();
    assert_eq!(retry.offsets(), second.offsets());
    assert_eq!(p.end_offset(), 5);
    assert_eq!(p.producer(7).unwrap().next_sequence(), 5);
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let mut p = PartitionState::new();
    for i in 0..=RECENT_BATCHES as u64 {
        produce_as(&mut p, i + 1, 1, Some((7, 0, i))).unwrap();
    }
    // Sequence 0 fell out of the cache; 1 is still there.
    assert_eq!(
        produce_as(&mut p, 20, 1, Some((7, 0, 0))),
        Err(StreamError::DuplicateSequenceUnknown { got: 0 })
    );
    assert!(
        produce_as(&mut p, 21, 1, Some((7, 0, 1)))
            .unwrap()
            .duplicate
    );
    // Same base sequence, different record count: not the same batch.
    assert_eq!(
        produce_as(&mut p, 22, 2, Some((7, 0, 1))),
        Err(StreamError::DuplicateSequenceUnknown { got: 1 })
    );
}

#[test]
fn a_sequence_gap_is_rejected() {
    let mut p = PartitionState::new();
    produce_as(&mut p, 1, 2, Some((7, 0, 0))).unwrap();
    assert_eq!(
        produce_as(&mut p, 2, 1, Some((7, 0, 3))),
        Err(StreamError::OutOfOrderSequence {
            expected: 2,
            got: 3
        })
    );
    // A new producer id must start at 0.
    assert_eq!(
        produce_as(&mut p, 3, 1, Some((8, 0, 4))),
        Err(StreamError::OutOfOrderSequence {
            expected: 0,
            got: 4
        })
    );
    assert_eq!(p.end_offset(), 2);
}

#[test]
fn a_stale_epoch_is_fenced_and_a_new_epoch_starts_over() {
    let mut p = PartitionState::new();
    produce_as(&mut p, 1, 2, Some((7, 0, 0))).unwrap();
    // A new session of producer 7 must start at sequence 0.
    assert_eq!(
        produce_as(&mut p, 2, 1, Some((7, 1, 2))),
        Err(StreamError::OutOfOrderSequence {
            expected: 0,
            got: 2
        })
    );
    let fresh = produce_as(&mut p, 3, 1, Some((7, 1, 0))).unwrap();
    assert!(!fresh.duplicate);
    assert_eq!(fresh.base_offset, 2);
    assert_eq!(p.producer(7).unwrap().epoch(), 1);
    assert_eq!(
        produce_as(&mut p, 4, 1, Some((7, 0, 2))),
        Err(StreamError::ProducerFenced {
            producer_id: 7,
            epoch: 0,
            current_epoch: 1
        })
    );
    // Producers are independent.
    assert!(!produce_as(&mut p, 5, 1, Some((9, 0, 0))).unwrap().duplicate);
}

#[test]
fn the_snapshot_round_trips() {
    let mut p = PartitionState::new();
    produce_as(&mut p, 1, 2, Some((7, 0, 0))).unwrap();
    produce(&mut p, 2, 3);
    retain(&mut p, 3, 3).unwrap();
    let json = serde_json::to_string(&p).unwrap();
    let back: PartitionState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    let command: Command =
        serde_json::from_str(r#"{"type":"retain","earliest_offset":4}"#).unwrap();
    assert_eq!(command, Command::Retain { earliest_offset: 4 });
}

#[test]
fn idle_producers_are_forgotten_and_start_over() {
    let mut p = PartitionState::new();
    produce_as(&mut p, 1, 2, Some((7, 0, 0))).unwrap(); // at 1_000
    let reply = p
        .apply(
            2,
            TimedCommand::new(5_000, Command::ExpireProducers { idle_ms: 4_000 }),
        )
        .unwrap();
    assert_eq!(reply, PartitionReply::ProducersExpired { expired: 0 });
    let reply = p
        .apply(
            3,
            TimedCommand::new(5_001, Command::ExpireProducers { idle_ms: 4_000 }),
        )
        .unwrap();
    assert_eq!(reply, PartitionReply::ProducersExpired { expired: 1 });
    assert!(p.producer(7).is_none());
    // Forgotten: sequence 2 is a gap now, 0 is accepted as new.
    assert_eq!(
        produce_as(&mut p, 4, 1, Some((7, 0, 2))),
        Err(StreamError::OutOfOrderSequence {
            expected: 0,
            got: 2
        })
    );
}

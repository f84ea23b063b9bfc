//! Idempotent producers: per (producer id, partition), the current epoch,
//! the next expected sequence number, and the last [`RECENT_BATCHES`]
//! batches' sequence → offsets, like Kafka's producer state.
//!
//! Rules for a batch with (epoch, base sequence, record count):
//! - epoch below the current one: fenced (a zombie of an older session);
//! - a new producer id or a newer epoch must start at sequence 0;
//! - base sequence equal to the next expected: appended;
//! - base sequence above it: a gap, rejected (`OutOfOrderSequence`);
//! - base sequence below it: a retry — acknowledged with the original
//!   offsets when it is one of the recent batches (same base sequence and
//!   record count), else rejected (`DuplicateSequenceUnknown`).
//!
//! The state of a producer idle for longer than the broker's expiry is
//! dropped by `Command::ExpireProducers`, so the map stays bounded.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::StreamError;
use crate::{LogIndex, Offset, ProducerEpoch, ProducerId, Sequence};

/// How many recent batches are remembered per producer (Kafka keeps 5: the
/// most a producer may have in flight with idempotence on).
pub const RECENT_BATCHES: usize = 5;

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecentBatch {
    pub base_sequence: Sequence,
    pub record_count: u32,
    pub base_offset: Offset,
    pub log_index: LogIndex,
}

/// What one producer id has written to this partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    pub(crate) epoch: ProducerEpoch,
    /// When it last appended a batch (the entry's `now_ms`).
    pub(crate) last_produce_ms: u64,
    pub(crate) next_sequence: Sequence,
    pub(crate) recent: VecDeque<RecentBatch>,
}

/// The verdict on an idempotent batch before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Append it (a new producer id or epoch starts afresh).
    Append,
    /// A retry of this recent batch: answer with its offsets, append nothing.
    Duplicate(RecentBatch),
}

impl ProducerState {
    pub fn epoch(&self) -> ProducerEpoch {
        self.epoch
    }

    /// The sequence number the next batch must start with.
    pub fn next_sequence(&self) -> Sequence {
        self.next_sequence
    }

    pub fn last_produce_ms(&self) -> u64 {
        self.last_produce_ms
    }

    /// Judges a batch from `producer_id` against this state (`None`: the
    /// producer id is new here).
    pub(crate) fn check(
        state: Option<&ProducerState>,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        base_sequence: Sequence,
        record_count: u32,
    ) -> Result<Check, StreamError> {
        let expected = match state {
            Some(s) if epoch < s.epoch => {
                return Err(StreamError::ProducerFenced {
                    producer_id,
                    epoch,
                    current_epoch: s.epoch,
                });
            }
            Some(s) if epoch == s.epoch => s.next_sequence,
            _ => 0,
        };
        if base_sequence == expected {
            return Ok(Check::Append);
        }
        if base_sequence > expected {
            return Err(StreamError::OutOfOrderSequence {
                expected,
                got: base_sequence,
            });
        }
        // Below the expected sequence: only possible within the same epoch.
        let recent = state.and_then(|s| {
            s.recent
                .iter()
                .find(|b| b.base_sequence == base_sequence && b.record_count == record_count)
        });
        match recent {
            Some(b) => Ok(Check::Duplicate(*b)),
            None => Err(StreamError::DuplicateSequenceUnknown { got: base_sequence }),
        }
    }

    /// Records an appended batch (already checked with [`Check::Append`]).
    pub(crate) fn record(
        state: Option<ProducerState>,
        epoch: ProducerEpoch,
        batch: RecentBatch,
        now_ms: u64,
    ) -> ProducerState {
        let mut s = match state {
            Some(s) if s.epoch == epoch => s,
            _ => ProducerState {
                epoch,
                last_produce_ms: now_ms,
                next_sequence: 0,
                recent: VecDeque::new(),
            },
        };
        s.last_produce_ms = now_ms;
        s.next_sequence = batch.base_sequence + u64::from(batch.record_count);
        if s.recent.len() == RECENT_BATCHES {
            s.recent.pop_front();
        }
        s.recent.push_back(batch);
        s
    }
}

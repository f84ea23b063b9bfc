//! The partition state machine: dense record offsets over the Raft log.
//!
//! Offsets are independent of Raft indexes: a partition's log also holds
//! entries that carry no records (retention, group commands, membership
//! changes), so each produced batch's first offset is mapped to the log
//! index holding it, and a fetch at offset X finds the entry and the record
//! slot within it with [`PartitionState::locate`].
//!
//! The state machine only ever sees committed entries, so the high
//! watermark equals the end offset (the next offset to be written).
//! Retention moves the earliest offset forward; batches wholly below it are
//! forgotten and [`PartitionState::release_index`] says which log prefix
//! the storage may drop.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{Command, ProducerBatch, TimedCommand};
use crate::error::StreamError;
use crate::producer::{Check, ProducerState, RecentBatch};
use crate::{LogIndex, Offset, ProducerId};

/// Where a batch of records sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct BatchLocation {
    log_index: LogIndex,
    record_count: u32,
}

/// The replicated state of one stream partition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PartitionState {
    applied_index: LogIndex,
    /// Highest `now_ms` applied: time never runs backwards here.
    clock_ms: u64,
    earliest_offset: Offset,
    end_offset: Offset,
    /// First offset of each live batch → where it is.
    batches: BTreeMap<Offset, BatchLocation>,
    producers: BTreeMap<ProducerId, ProducerState>,
}

/// One live produced batch: where its records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    /// The offset of the batch's first record.
    pub base_offset: Offset,
    /// The log entry holding the batch.
    pub log_index: LogIndex,
    pub record_count: u32,
}

/// The offsets a produced batch got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResult {
    /// The offset of the batch's first record; record `i` has `base_offset + i`.
    pub base_offset: Offset,
    pub record_count: u32,
    /// The log entry holding the batch (for a duplicate: the original one).
    pub log_index: LogIndex,
    /// A retry of a batch already written: nothing was appended.
    pub duplicate: bool,
}

impl ProduceResult {
    /// The offset of every record of the batch, in order.
    pub fn offsets(&self) -> std::ops::Range<Offset> {
        self.base_offset..self.base_offset + u64::from(self.record_count)
    }
}

/// The answer to an applied partition command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum PartitionReply {
    Produced(ProduceResult),
    Retained {
        earliest_offset: Offset,
        end_offset: Offset,
    },
    /// How many producers' idempotence state was forgotten.
    ProducersExpired {
        expired: usize,
    },
}

impl PartitionState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the command of the committed entry at `log_index`.
    pub fn apply(
        &mut self,
        log_index: LogIndex,
        command: TimedCommand<Command>,
    ) -> Result<PartitionReply, StreamError> {
        if log_index <= self.applied_index {
            return Err(StreamError::LogIndexRegressed {
                applied: self.applied_index,
                got: log_index,
            });
        }
        self.applied_index = log_index;
        self.clock_ms = self.clock_ms.max(command.now_ms);
        match command.command {
            Command::Produce {
                record_count,
                producer,
            } => self
                .produce(log_index, record_count, producer)
                .map(PartitionReply::Produced),
            Command::Retain { earliest_offset } => self.retain(earliest_offset),
            Command::ExpireProducers { idle_ms } => {
                let now = self.clock_ms;
                let before = self.producers.len();
                self.producers
                    .retain(|_, p| now.saturating_sub(p.last_produce_ms) <= idle_ms);
                Ok(PartitionReply::ProducersExpired {
                    expired: before - self.producers.len(),
                })
            }
        }
    }

    /// Records the entry at `log_index` that carries no command of this
    /// partition (a group command, a Raft membership change), so the applied
    /// index still advances.
    pub fn skip(&mut self, log_index: LogIndex) -> Result<(), StreamError> {
        if log_index <= self.applied_index {
            return Err(StreamError::LogIndexRegressed {
                applied: self.applied_index,
                got: log_index,
            });
        }
        self.applied_index = log_index;
        Ok(())
    }

    fn produce(
        &mut self,
        log_index: LogIndex,
        record_count: u32,
        producer: Option<ProducerBatch>,
    ) -> Result<ProduceResult, StreamError> {
        if record_count == 0 {
            return Err(StreamError::EmptyBatch);
        }
        if let Some(p) = producer {
            let state = self.producers.get(&p.producer_id);
            let check =
                ProducerState::check(state, p.producer_id, p.epoch, p.base_sequence, record_count)?;
            if let Check::Duplicate(b) = check {
                return Ok(ProduceResult {
                    base_offset: b.base_offset,
                    record_count: b.record_count,
                    log_index: b.log_index,
                    duplicate: true,
                });
            }
        }
        let base_offset = self.end_offset;
        self.end_offset += u64::from(record_count);
        self.batches.insert(
            base_offset,
            BatchLocation {
                log_index,
                record_count,
            },
        );
        if let Some(p) = producer {
            let old = self.producers.remove(&p.producer_id);
            let batch = RecentBatch {
                base_sequence: p.base_sequence,
                record_count,
                base_offset,
                log_index,
            };
            let state = ProducerState::record(old, p.epoch, batch, self.clock_ms);
            self.producers.insert(p.producer_id, state);
        }
        Ok(ProduceResult {
            base_offset,
            record_count,
            log_index,
            duplicate: false,
        })
    }

    fn retain(&mut self, earliest_offset: Offset) -> Result<PartitionReply, StreamError> {
        if earliest_offset > self.end_offset {
            return Err(StreamError::RetainBeyondEnd {
                requested: earliest_offset,
                end: self.end_offset,
            });
        }
        if earliest_offset > self.earliest_offset {
            self.earliest_offset = earliest_offset;
            // Keep the batch that holds the new earliest offset.
            let keep_from = self
                .batches
                .range(..=earliest_offset)
                .next_back()
                .filter(|(first, loc)| *first + u64::from(loc.record_count) > earliest_offset)
                .map(|(first, _)| *first)
                .unwrap_or(earliest_offset);
            self.batches = self.batches.split_off(&keep_from);
        }
        Ok(PartitionReply::Retained {
            earliest_offset: self.earliest_offset,
            end_offset: self.end_offset,
        })
    }

    /// The log entry and the record slot within it that hold `offset`, if
    /// the record exists and retention has not removed it.
    pub fn locate(&self, offset: Offset) -> Option<(LogIndex, u32)> {
        if offset < self.earliest_offset || offset >= self.end_offset {
            return None;
        }
        let (first, loc) = self.batches.range(..=offset).next_back()?;
        let slot = u32::try_from(offset - first).ok()?;
        (slot < loc.record_count).then_some((loc.log_index, slot))
    }

    /// The live batches from the one holding `offset` on, oldest first
    /// (log indexes grow with offsets).
    pub fn batches_from(&self, offset: Offset) -> impl Iterator<Item = BatchSpan> + '_ {
        let start = self
            .batches
            .range(..=offset)
            .next_back()
            .map_or(offset, |(first, _)| *first);
        self.batches
            .range(start..)
            .filter(move |(first, loc)| *first + u64::from(loc.record_count) > offset)
            .map(|(first, loc)| BatchSpan {
                base_offset: *first,
                log_index: loc.log_index,
                record_count: loc.record_count,
            })
    }

    /// The log index of the entry that holds `offset`.
    pub fn log_index_for_offset(&self, offset: Offset) -> Option<LogIndex> {
        self.locate(offset).map(|(index, _)| index)
    }

    /// Where a fetch from `offset` starts: `Ok(None)` at the end offset
    /// (nothing yet: long-poll), an error below the earliest offset (it
    /// carries the earliest valid offset) or beyond the end.
    pub fn fetch_position(&self, offset: Offset) -> Result<Option<(LogIndex, u32)>, StreamError> {
        if offset < self.earliest_offset {
            return Err(StreamError::OffsetBelowEarliest {
                requested: offset,
                earliest: self.earliest_offset,
            });
        }
        if offset > self.end_offset {
            return Err(StreamError::OffsetBeyondEnd {
                requested: offset,
                end: self.end_offset,
            });
        }
        Ok(self.locate(offset))
    }

    /// The first offset still readable.
    pub fn earliest_offset(&self) -> Offset {
        self.earliest_offset
    }

    /// The next offset to be written (Kafka's log end offset).
    pub fn end_offset(&self) -> Offset {
        self.end_offset
    }

    /// The offset up to which consumers may read: every applied entry is
    /// committed, so it is the end offset.
    pub fn high_watermark(&self) -> Offset {
        self.end_offset
    }

    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    /// Log entries below this index hold no live records: once a snapshot
    /// covers them, the storage may drop them. `None`: no live batch, the
    /// whole applied prefix may go.
    pub fn release_index(&self) -> Option<LogIndex> {
        self.batches.values().next().map(|b| b.log_index)
    }

    /// The idempotence state of `producer_id` on this partition.
    pub fn producer(&self, producer_id: ProducerId) -> Option<&ProducerState> {
        self.producers.get(&producer_id)
    }
}

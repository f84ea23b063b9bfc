//! The record codec: one Raft entry carries one partition command.
//!
//! Record 0 holds the `TimedCommand<Command>` as JSON. For `Produce`,
//! records 1..=n are the produced records themselves (key, value, headers,
//! timestamp as `sluice_storage::Record` fields), so a partition's records
//! are stored once, in the log; record `i + 1` is the batch's record `i`
//! (offset `base_offset + i`, slot `i` for `PartitionState::locate`).
//!
//! Partition 0's log also carries the stream's consumer-group commands
//! (`TimedCommand<GroupCommand>`, no records after it): both command enums
//! are tagged by `type` with distinct names, so record 0 decodes as
//! whichever it is ([`EntryCommand`]). `Commit` and `Seek` carry maps keyed
//! by partition number, which serde cannot read back from JSON inside an
//! internally tagged enum (object keys are strings there), so they travel as
//! [`MapCommand`]s with `[partition, value]` pairs instead.

use serde::{Deserialize, Serialize};
use sluice_storage::Record;
use sluice_storage::raft::Records;
use std::collections::BTreeMap;

use sluice_stream::{Command, GroupCommand, MemberId, PartitionBounds, SeekTarget, TimedCommand};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode the command: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0}")]
    Decode(String),
}

/// What record 0 of an entry holds.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryCommand {
    Partition(TimedCommand<Command>),
    Group(TimedCommand<GroupCommand>),
}

/// Record 0 as written: the three command shapes have distinct `type`s.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Wire {
    Partition(TimedCommand<Command>),
    Group(TimedCommand<GroupCommand>),
    Maps(TimedCommand<MapCommand>),
}

type Pairs<V> = Vec<(u32, V)>;

/// The group commands that carry maps keyed by partition, with pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum MapCommand {
    CommitOffsets {
        group: String,
        member_id: MemberId,
        generation: u64,
        offsets: Pairs<u64>,
    },
    SeekOffsets {
        group: String,
        to: String,
        #[serde(default)]
        timestamp_ms: Option<i64>,
        offsets: Pairs<u64>,
        bounds: Pairs<PartitionBounds>,
        force: bool,
    },
}

fn pairs<V: Clone>(map: &BTreeMap<u32, V>) -> Pairs<V> {
    map.iter().map(|(k, v)| (*k, v.clone())).collect()
}

fn to_wire(command: &TimedCommand<GroupCommand>) -> Wire {
    let now_ms = command.now_ms;
    let maps = match &command.command {
        GroupCommand::Commit {
            group,
            member_id,
            generation,
            offsets,
        } => MapCommand::CommitOffsets {
            group: group.clone(),
            member_id: member_id.clone(),
            generation: *generation,
            offsets: pairs(offsets),
        },
        GroupCommand::Seek {
            group,
            target,
            bounds,
            force,
        } => {
            let (to, timestamp_ms, offsets) = match target {
                SeekTarget::Earliest => ("earliest", None, Vec::new()),
                SeekTarget::Latest => ("latest", None, Vec::new()),
                SeekTarget::Offsets { offsets } => ("offsets", None, pairs(offsets)),
                SeekTarget::Timestamp {
                    timestamp_ms,
                    offsets,
                } => ("timestamp", Some(*timestamp_ms), pairs(offsets)),
            };
            MapCommand::SeekOffsets {
                group: group.clone(),
                to: to.to_string(),
                timestamp_ms,
                offsets,
                bounds: pairs(bounds),
                force: *force,
            }
        }
        _ => return Wire::Group(command.clone()),
    };
    Wire::Maps(TimedCommand::new(now_ms, maps))
}

fn from_maps(command: TimedCommand<MapCommand>) -> Result<TimedCommand<GroupCommand>, CodecError> {
    let group = match command.command {
        MapCommand::CommitOffsets {
            group,
            member_id,
            generation,
            offsets,
        } => GroupCommand::Commit {
            group,
            member_id,
            generation,
            offsets: offsets.into_iter().collect(),
        },
        MapCommand::SeekOffsets {
            group,
            to,
            timestamp_ms,
            offsets,
            bounds,
            force,
        } => {
            let offsets: BTreeMap<u32, u64> = offsets.into_iter().collect();
            let target = match (to.as_str(), timestamp_ms) {
                ("earliest", _) => SeekTarget::Earliest,
                ("latest", _) => SeekTarget::Latest,
                ("offsets", _) => SeekTarget::Offsets { offsets },
                ("timestamp", Some(timestamp_ms)) => SeekTarget::Timestamp {
                    timestamp_ms,
                    offsets,
                },
                _ => return Err(CodecError::Decode(format!("unknown seek target {to}"))),
            };
            GroupCommand::Seek {
                group,
                target,
                bounds: bounds.into_iter().collect(),
                force,
            }
        }
    };
    Ok(TimedCommand::new(command.now_ms, group))
}

/// The entry for `command` with the produced `records` after it.
pub fn encode_entry(
    command: &TimedCommand<Command>,
    records: Vec<Record>,
) -> Result<Records, CodecError> {
    encode(command.now_ms, serde_json::to_vec(command)?, records)
}

/// The entry for a consumer-group command (partition 0's log only).
pub fn encode_group_entry(command: &TimedCommand<GroupCommand>) -> Result<Records, CodecError> {
    encode(
        command.now_ms,
        serde_json::to_vec(&to_wire(command))?,
        Vec::new(),
    )
}

fn encode(now_ms: u64, command: Vec<u8>, records: Vec<Record>) -> Result<Records, CodecError> {
    let timestamp = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(1 + records.len());
    out.push(Record {
        timestamp,
        key: None,
        headers: Vec::new(),
        value: command,
    });
    out.extend(records);
    Ok(Records(out))
}

/// The command of an entry; a `Produce` must count exactly the records
/// the entry carries after record 0.
pub fn decode_command(records: &Records) -> Result<EntryCommand, CodecError> {
    let first = records
        .0
        .first()
        .ok_or_else(|| CodecError::Decode("entry has no records".into()))?;
    let wire: Wire = serde_json::from_slice(&first.value)
        .map_err(|e| CodecError::Decode(format!("record 0: {e}")))?;
    let command = match wire {
        Wire::Partition(command) => EntryCommand::Partition(command),
        Wire::Group(command) => EntryCommand::Group(command),
        Wire::Maps(command) => EntryCommand::Group(from_maps(command)?),
    };
    if let EntryCommand::Partition(TimedCommand {
        command: Command::Produce { record_count, .. },
        ..
    }) = &command
        && *record_count as usize != records.0.len() - 1
    {
        return Err(CodecError::Decode(format!(
            "produce of {record_count} records in an entry of {} records",
            records.0.len() - 1
        )));
    }
    Ok(command)
}

/// The produced records of an entry (everything after the command).
pub fn produced(mut records: Vec<Record>) -> Vec<Record> {
    if records.is_empty() {
        return records;
    }
    records.remove(0);
    records
}

#[cfg(test)]
mod tests {
    use sluice_stream::ProducerBatch;

    use super::*;

    fn record(value: &str, ts: i64) -> Record {
        Record {
            timestamp: ts,
            key: Some(b"k".to_vec()),
            headers: vec![("h".into(), b"v".to_vec())],
            value: value.as_bytes().to_vec(),
        }
    }

    #[test]
    fn produce_round_trips_with_records_after_the_command() {
        let command = TimedCommand::new(
            1_000,
            Command::Produce {
                record_count: 2,
                producer: Some(ProducerBatch {
                    producer_id: 7,
                    epoch: 1,
                    base_sequence: 3,
                }),
            },
        );
        let entry = encode_entry(&command, vec![record("a", 5), record("b", 6)]).unwrap();
        assert_eq!(entry.0.len(), 3);
        assert_eq!(entry.0[0].timestamp, 1_000);
        assert_eq!(
            decode_command(&entry).unwrap(),
            EntryCommand::Partition(command)
        );
        assert_eq!(
            produced(entry.0),
            vec![record("a", 5), record("b", 6)],
            "records come back as produced"
        );
    }

    #[test]
    fn a_record_count_that_does_not_match_the_entry_is_refused() {
        let command = TimedCommand::new(
            1,
            Command::Produce {
                record_count: 3,
                producer: None,
            },
        );
        let entry = encode_entry(&command, vec![record("a", 1)]).unwrap();
        assert!(decode_command(&entry).is_err());
        assert!(decode_command(&Records(Vec::new())).is_err());
        let garbage = Records(vec![Record::from_value("not json")]);
        assert!(decode_command(&garbage).is_err());
    }

    #[test]
    fn other_commands_round_trip() {
        let retain = TimedCommand::new(9, Command::Retain { earliest_offset: 4 });
        let entry = encode_entry(&retain, Vec::new()).unwrap();
        assert_eq!(
            decode_command(&entry).unwrap(),
            EntryCommand::Partition(retain)
        );
    }

    #[test]
    fn group_commands_decode_as_group_commands() {
        let heartbeat = TimedCommand::new(
            9,
            GroupCommand::Heartbeat {
                group: "g".into(),
                member_id: "c-1".into(),
                generation: 2,
            },
        );
        let entry = encode_group_entry(&heartbeat).unwrap();
        assert_eq!(
            decode_command(&entry).unwrap(),
            EntryCommand::Group(heartbeat)
        );
        for command in [
            GroupCommand::Commit {
                group: "g".into(),
                member_id: "c-1".into(),
                generation: 2,
                offsets: BTreeMap::from([(2, 5), (0, 1)]),
            },
            GroupCommand::Seek {
                group: "g".into(),
                target: SeekTarget::Timestamp {
                    timestamp_ms: 77,
                    offsets: BTreeMap::from([(1, 4)]),
                },
                bounds: BTreeMap::from([(
                    1,
                    PartitionBounds {
                        earliest: 0,
                        end: 9,
                    },
                )]),
                force: true,
            },
            GroupCommand::Seek {
                group: "g".into(),
                target: SeekTarget::Latest,
                bounds: BTreeMap::new(),
                force: false,
            },
        ] {
            let command = TimedCommand::new(3, command);
            let entry = encode_group_entry(&command).unwrap();
            assert_eq!(
                decode_command(&entry).unwrap(),
                EntryCommand::Group(command)
            );
        }
        let tick = encode_group_entry(&TimedCommand::new(1, GroupCommand::Tick)).unwrap();
        assert!(matches!(
            decode_command(&tick).unwrap(),
            EntryCommand::Group(_)
        ));
    }
}

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
//! by partition number, which `sluice_stream` writes as `[partition, value]`
//! pairs so they read back from inside its tagged enums.
//!
//! Before it did, this codec wrote those two commands in a shape of its own
//! (`commit_offsets` / `seek_offsets` with pairs, `LegacyMapCommand`).
//! Nothing writes that shape any more, but logs written then still hold it,
//! so it is still decoded.

use serde::Deserialize;
use sluice_storage::Record;
use sluice_storage::raft::Records;

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

/// Record 0 as it may be found in a log: the command shapes have distinct
/// `type`s.
#[derive(Deserialize)]
#[serde(untagged)]
enum Wire {
    Partition(TimedCommand<Command>),
    Group(TimedCommand<GroupCommand>),
    Legacy(TimedCommand<LegacyMapCommand>),
}

type Pairs<V> = Vec<(u32, V)>;

/// `Commit` and `Seek` as this codec wrote them before `sluice_stream` could
/// read its own partition maps back: decode only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
enum LegacyMapCommand {
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

fn from_legacy(
    command: TimedCommand<LegacyMapCommand>,
) -> Result<TimedCommand<GroupCommand>, CodecError> {
    let group = match command.command {
        LegacyMapCommand::CommitOffsets {
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
        LegacyMapCommand::SeekOffsets {
            group,
            to,
            timestamp_ms,
            offsets,
            bounds,
            force,
        } => {
            let offsets = offsets.into_iter().collect();
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
    encode(command.now_ms, serde_json::to_vec(command)?, Vec::new())
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
        Wire::Legacy(command) => EntryCommand::Group(from_legacy(command)?),
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
    use std::collections::BTreeMap;

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

    #[test]
    fn group_commands_are_written_in_the_stream_crates_own_form() {
        let commit = TimedCommand::new(
            3,
            GroupCommand::Commit {
                group: "g".into(),
                member_id: "c-1".into(),
                generation: 2,
                offsets: BTreeMap::from([(2, 5), (0, 1)]),
            },
        );
        let entry = encode_group_entry(&commit).unwrap();
        let written: TimedCommand<GroupCommand> =
            serde_json::from_slice(&entry.0[0].value).expect("plain GroupCommand JSON");
        assert_eq!(written, commit);
    }

    #[test]
    fn entries_written_in_the_old_pairs_shape_still_decode() {
        // Record 0 exactly as this codec wrote `Commit` and `Seek` before
        // sluice-stream wrote its partition maps as pairs itself.
        let bounds = BTreeMap::from([(
            1,
            PartitionBounds {
                earliest: 0,
                end: 9,
            },
        )]);
        let seek = |target, bounds, force| GroupCommand::Seek {
            group: "g".into(),
            target,
            bounds,
            force,
        };
        let cases = [
            (
                r#"{"now_ms":3,"command":{"type":"commit_offsets","group":"g","member_id":"c-1","generation":2,"offsets":[[0,1],[2,5]]}}"#,
                GroupCommand::Commit {
                    group: "g".into(),
                    member_id: "c-1".into(),
                    generation: 2,
                    offsets: BTreeMap::from([(2, 5), (0, 1)]),
                },
            ),
            (
                r#"{"now_ms":3,"command":{"type":"seek_offsets","group":"g","to":"timestamp","timestamp_ms":77,"offsets":[[1,4]],"bounds":[[1,{"earliest":0,"end":9}]],"force":true}}"#,
                seek(
                    SeekTarget::Timestamp {
                        timestamp_ms: 77,
                        offsets: BTreeMap::from([(1, 4)]),
                    },
                    bounds.clone(),
                    true,
                ),
            ),
            (
                r#"{"now_ms":3,"command":{"type":"seek_offsets","group":"g","to":"offsets","timestamp_ms":null,"offsets":[[1,4]],"bounds":[[1,{"earliest":0,"end":9}]],"force":false}}"#,
                seek(
                    SeekTarget::Offsets {
                        offsets: BTreeMap::from([(1, 4)]),
                    },
                    bounds.clone(),
                    false,
                ),
            ),
            (
                r#"{"now_ms":3,"command":{"type":"seek_offsets","group":"g","to":"earliest","timestamp_ms":null,"offsets":[],"bounds":[[1,{"earliest":0,"end":9}]],"force":false}}"#,
                seek(SeekTarget::Earliest, bounds, false),
            ),
            (
                r#"{"now_ms":3,"command":{"type":"seek_offsets","group":"g","to":"latest","timestamp_ms":null,"offsets":[],"bounds":[],"force":false}}"#,
                seek(SeekTarget::Latest, BTreeMap::new(), false),
            ),
        ];
        for (old, expected) in cases {
            let entry = Records(vec![Record::from_value(old)]);
            assert_eq!(
                decode_command(&entry).unwrap_or_else(|e| panic!("{old}: {e}")),
                EntryCommand::Group(TimedCommand::new(3, expected)),
            );
        }
        let unknown = r#"{"now_ms":3,"command":{"type":"seek_offsets","group":"g","to":"sideways","timestamp_ms":null,"offsets":[],"bounds":[],"force":false}}"#;
        assert!(decode_command(&Records(vec![Record::from_value(unknown)])).is_err());
    }
}

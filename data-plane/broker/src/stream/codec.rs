//! The record codec: one Raft entry carries one partition command.
//!
//! Record 0 holds the `TimedCommand<Command>` as JSON. For `Produce`,
//! records 1..=n are the produced records themselves (key, value, headers,
//! timestamp as `sluice_storage::Record` fields), so a partition's records
//! are stored once, in the log; record `i + 1` is the batch's record `i`
//! (offset `base_offset + i`, slot `i` for `PartitionState::locate`).

use sluice_storage::Record;
use sluice_storage::raft::Records;
use sluice_stream::{Command, TimedCommand};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode the command: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0}")]
    Decode(String),
}

/// The entry for `command` with the produced `records` after it.
pub fn encode_entry(
    command: &TimedCommand<Command>,
    records: Vec<Record>,
) -> Result<Records, CodecError> {
    let timestamp = i64::try_from(command.now_ms).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(1 + records.len());
    out.push(Record {
        timestamp,
        key: None,
        headers: Vec::new(),
        value: serde_json::to_vec(command)?,
    });
    out.extend(records);
    Ok(Records(out))
}

/// The command of an entry; a `Produce` must count exactly the records
/// the entry carries after record 0.
pub fn decode_command(records: &Records) -> Result<TimedCommand<Command>, CodecError> {
    let first = records
        .0
        .first()
        .ok_or_else(|| CodecError::Decode("entry has no records".into()))?;
    let command: TimedCommand<Command> = serde_json::from_slice(&first.value)
        .map_err(|e| CodecError::Decode(format!("record 0: {e}")))?;
    if let Command::Produce { record_count, .. } = &command.command
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
        assert_eq!(decode_command(&entry).unwrap(), command);
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
        assert_eq!(decode_command(&entry).unwrap(), retain);
    }
}

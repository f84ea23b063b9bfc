//! The message codec: one Raft entry carries one queue command.
//!
//! Record 0 holds the `TimedCommand` as JSON. For `Publish`, records 1..=n
//! hold the message bodies and message `i`'s `body_ref.slot` is `i + 1`; the
//! proposer cannot know the entry's log index, so it leaves
//! `body_ref.log_index` at 0 and [`decode_command`] fills it in at apply time
//! from the entry's index — the same on every replica. A body record keeps
//! how the publisher encoded the body and its content type as record headers,
//! so a receive answers in the same encoding.

use sluice_queue::{Command, PublishMessage, TimedCommand};
use sluice_storage::Record;
use sluice_storage::raft::Records;

const ENCODING_HEADER: &str = "encoding";
const CONTENT_TYPE_HEADER: &str = "content-type";

// It also travels broker to broker with a republished message
// (`sluice_protocol::peer::Republish`), so the protocol declares it.
pub use sluice_protocol::peer::BodyEncoding;

/// A message body as stored in its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody {
    pub bytes: Vec<u8>,
    pub encoding: BodyEncoding,
    pub content_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode the command: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0}")]
    Decode(String),
}

/// The entry for `command`; `bodies[i]` is the body of the publish's message `i`.
pub fn encode_entry(
    command: &TimedCommand,
    bodies: Vec<MessageBody>,
) -> Result<Records, CodecError> {
    let timestamp = i64::try_from(command.now_ms).unwrap_or(i64::MAX);
    let mut records = Vec::with_capacity(1 + bodies.len());
    records.push(Record {
        timestamp,
        key: None,
        headers: Vec::new(),
        value: serde_json::to_vec(command)?,
    });
    for body in bodies {
        let mut headers = vec![(
            ENCODING_HEADER.to_string(),
            body.encoding.as_str().as_bytes().to_vec(),
        )];
        if let Some(content_type) = body.content_type {
            headers.push((CONTENT_TYPE_HEADER.to_string(), content_type.into_bytes()));
        }
        records.push(Record {
            timestamp,
            key: None,
            headers,
            value: body.bytes,
        });
    }
    Ok(Records(records))
}

/// The command in an entry at `log_index`, with every publish's body refs
/// pointing at this entry. Fails when record 0 is not a command or a body ref
/// names a record the entry does not have.
pub fn decode_command(log_index: u64, records: &Records) -> Result<TimedCommand, CodecError> {
    let first = records
        .0
        .first()
        .ok_or_else(|| CodecError::Decode("entry has no records".into()))?;
    let mut command: TimedCommand = serde_json::from_slice(&first.value)
        .map_err(|e| CodecError::Decode(format!("record 0: {e}")))?;
    if let Command::Publish { messages } = &mut command.command {
        for message in messages.iter_mut() {
            let slot = message.body_ref.slot as usize;
            if slot == 0 || slot >= records.0.len() {
                return Err(CodecError::Decode(format!(
                    "body slot {slot} outside the entry's {} records",
                    records.0.len()
                )));
            }
            message.body_ref.log_index = log_index;
        }
    }
    Ok(command)
}

/// The messages of the publish whose entry holds `records`, as the
/// proposer wrote them (`body_ref.slot` set, `log_index` 0): where a plain
/// message's id, routing key and headers are kept (issue 21).
pub fn published_messages(records: &[Record]) -> Result<Vec<PublishMessage>, CodecError> {
    let first = records
        .first()
        .ok_or_else(|| CodecError::Decode("entry has no records".into()))?;
    let command: TimedCommand = serde_json::from_slice(&first.value)
        .map_err(|e| CodecError::Decode(format!("record 0: {e}")))?;
    match command.command {
        Command::Publish { messages } => Ok(messages),
        _ => Err(CodecError::Decode("the entry is not a publish".into())),
    }
}

/// The body kept in a body record.
pub fn body_from_record(record: Record) -> MessageBody {
    let mut encoding = BodyEncoding::Utf8;
    let mut content_type = None;
    for (name, value) in record.headers {
        match name.as_str() {
            ENCODING_HEADER if value == b"base64" => encoding = BodyEncoding::Base64,
            CONTENT_TYPE_HEADER => content_type = String::from_utf8(value).ok(),
            _ => {}
        }
    }
    MessageBody {
        bytes: record.value,
        encoding,
        content_type,
    }
}

#[cfg(test)]
mod tests {

    use sluice_queue::{BodyRef, PublishMessage};

    use super::*;

    fn publish(n: u32) -> TimedCommand {
        let messages = (0..n)
            .map(|i| PublishMessage {
                message_id: Some(format!("m{i}")),
                routing_key: "rk".into(),
                ..PublishMessage::new(
                    BodyRef {
                        log_index: 0,
                        slot: i + 1,
                    },
                    3,
                )
            })
            .collect();
        TimedCommand::new(1_000, Command::Publish { messages })
    }

    fn body(text: &str, encoding: BodyEncoding) -> MessageBody {
        MessageBody {
            bytes: text.as_bytes().to_vec(),
            encoding,
            content_type: Some("text/plain".into()),
        }
    }

    #[test]
    fn publish_round_trips_and_points_bodies_at_the_entry() {
        let records = encode_entry(
            &publish(2),
            vec![
                body("one", BodyEncoding::Utf8),
                body("two", BodyEncoding::Base64),
            ],
        )
        .unwrap();
        assert_eq!(records.0.len(), 3);
        let decoded = decode_command(42, &records).unwrap();
        let Command::Publish { messages } = decoded.command else {
            panic!("not a publish");
        };
        let refs: Vec<BodyRef> = messages.iter().map(|m| m.body_ref).collect();
        assert_eq!(
            refs,
            vec![
                BodyRef {
                    log_index: 42,
                    slot: 1
                },
                BodyRef {
                    log_index: 42,
                    slot: 2
                }
            ]
        );
        let second = body_from_record(records.0[2].clone());
        assert_eq!(second, body("two", BodyEncoding::Base64));
    }

    #[test]
    fn a_body_ref_outside_the_entry_is_refused() {
        let records =
            encode_entry(&publish(2), vec![body("only one", BodyEncoding::Utf8)]).unwrap();
        assert!(decode_command(7, &records).is_err());
        assert!(decode_command(7, &Records(Vec::new())).is_err());
    }

    #[test]
    fn other_commands_round_trip() {
        let tick = TimedCommand::new(5, Command::Tick);
        let records = encode_entry(&tick, Vec::new()).unwrap();
        assert_eq!(decode_command(9, &records).unwrap(), tick);
    }
}

//! Reading messages back from a queue's log: bodies, and the metadata a
//! plain message left in its publish entry (issue 21: the state machine
//! keeps about 20 bytes per plain ready message, not its id, routing key
//! and headers, and marks what it reports about one with
//! `MessageMeta::in_log`). Both come from the same entry, so completing a
//! delivery costs no read beyond its body's.

use std::collections::HashMap;

use sluice_queue::{BodyRef, PublishMessage};
use sluice_storage::{Record, SegmentLog};

use super::codec::{self, MessageBody};
use crate::raft::group::GroupError;

/// Bytes asked for per entry lookup: a read always returns at least one
/// batch, and one entry is one batch, so this reads exactly the entry —
/// not the entries after it, which a drain would decode again and again.
const ENTRY_READ_BYTES: usize = 1;

/// One message read back: its body and, when asked for, the message as its
/// publish entry carries it.
pub type ReadMessage = (MessageBody, Option<PublishMessage>);

/// The messages `refs` point at, in order; `(body_ref, true)` also wants
/// the publish entry's metadata. Each entry is read (and its command
/// decoded) once however many of its messages are asked for.
pub fn read_messages(
    log: &SegmentLog,
    refs: &[(BodyRef, bool)],
) -> Result<Vec<ReadMessage>, GroupError> {
    let mut entries: HashMap<u64, Vec<Record>> = HashMap::new();
    let mut published: HashMap<u64, Vec<PublishMessage>> = HashMap::new();
    let mut read = Vec::with_capacity(refs.len());
    for &(body_ref, wants_meta) in refs {
        let records = match entries.entry(body_ref.log_index) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(read_entry(log, body_ref.log_index)?)
            }
        };
        let record = records
            .get(body_ref.slot as usize)
            .cloned()
            .ok_or_else(|| {
                GroupError::Storage(format!(
                    "log entry {} has no body slot {}",
                    body_ref.log_index, body_ref.slot
                ))
            })?;
        let meta = if wants_meta {
            let messages = match published.entry(body_ref.log_index) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let messages = codec::published_messages(records).map_err(|e| {
                        GroupError::Storage(format!("log entry {}: {e}", body_ref.log_index))
                    })?;
                    entry.insert(messages)
                }
            };
            let message = messages
                .iter()
                .find(|message| message.body_ref.slot == body_ref.slot)
                .cloned()
                .ok_or_else(|| {
                    GroupError::Storage(format!(
                        "log entry {} publishes no message at slot {}",
                        body_ref.log_index, body_ref.slot
                    ))
                })?;
            Some(message)
        } else {
            None
        };
        read.push((codec::body_from_record(record), meta));
    }
    Ok(read)
}

/// The records of the entry at `log_index`.
fn read_entry(log: &SegmentLog, log_index: u64) -> Result<Vec<Record>, GroupError> {
    let batches = log
        .read(log_index, ENTRY_READ_BYTES)
        .map_err(|e| GroupError::Storage(e.to_string()))?;
    batches
        .into_iter()
        .find(|b| b.offset == log_index)
        .map(|batch| batch.records)
        .ok_or_else(|| GroupError::Storage(format!("log entry {log_index} is gone")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_queue::{Command, ConsumerId, QueueSettings, Reply};
    use tokio::sync::mpsc;

    use crate::queue::GroupSpec;
    use crate::queue::QueueGroup;
    use crate::queue::codec::BodyEncoding;
    use crate::queue::group::GroupOutlets;

    use super::*;

    fn message(slot: u32, key: &str) -> PublishMessage {
        PublishMessage {
            message_id: Some(format!("id-{key}")),
            routing_key: key.into(),
            headers: BTreeMap::from([("h".to_string(), key.to_string())]),
            ..PublishMessage::new(BodyRef { log_index: 0, slot }, 4)
        }
    }

    fn body(text: &str) -> MessageBody {
        MessageBody {
            bytes: text.as_bytes().to_vec(),
            encoding: BodyEncoding::Utf8,
            content_type: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_messages_are_delivered_and_peeked_with_their_metadata_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (notes, _received) = mpsc::unbounded_channel();
        let spec = GroupSpec {
            group_id: "q1".into(),
            tenant_id: 1,
            tenant: "acme".into(),
            queue: "jobs".into(),
            settings: QueueSettings::default(),
            replicas: vec!["n1".into()],
        };
        let group = QueueGroup::open(&dir.path().join("q1"), "n1", spec, GroupOutlets::new(notes))
            .await
            .expect("open group");
        let publish = Command::Publish {
            messages: vec![message(1, "a"), message(2, "b")],
        };
        let outcome = group
            .propose(publish, vec![body("one"), body("two")])
            .await
            .expect("publish");
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);

        let mut views = group.view().read(|q| q.peek(10));
        assert!(views.iter().all(|v| v.meta.in_log), "kept compact");
        let bodies = group.read_views(&mut views).await.expect("peek");
        assert_eq!(bodies[1].bytes, b"two");
        assert_eq!(views[1].meta.message_id.as_deref(), Some("id-b"));

        let receive = Command::Receive {
            consumer: ConsumerId("c".into()),
            max_messages: 10,
            lease_ms: Some(60_000),
        };
        let outcome = group.propose(receive, Vec::new()).await.expect("receive");
        let Ok(Reply::Received { mut deliveries }) = outcome.result else {
            panic!("receive answered {:?}", outcome.result);
        };
        let bodies = group
            .read_deliveries(&mut deliveries)
            .await
            .expect("bodies");
        assert_eq!(bodies[0].bytes, b"one");
        let keys: Vec<(&str, &str)> = deliveries
            .iter()
            .map(|d| (d.meta.routing_key.as_str(), d.meta.headers["h"].as_str()))
            .collect();
        assert_eq!(keys, vec![("a", "a"), ("b", "b")]);
        assert!(deliveries.iter().all(|d| !d.meta.in_log));
        group.close().await;
    }
}

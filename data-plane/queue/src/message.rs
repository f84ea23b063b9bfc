//! What the state machine knows about a message: where its body lies in the
//! Raft log and the metadata it needs to deliver, expire, group and
//! dead-letter it — never the body itself.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Position of a message in the queue, assigned when it is stored; FIFO order.
pub type Seq = u64;

/// Where a message body lives: the Raft log entry that carried the publish
/// and the message's position inside that entry's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BodyRef {
    pub log_index: u64,
    pub slot: u32,
}

/// A consumer, as named by the broker (one per pull client or push session).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsumerId(pub String);

impl From<&str> for ConsumerId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Proof of one delivery: the message and which delivery of it. A receipt
/// stops working once that delivery's lease is over (acked, nacked, expired,
/// consumer down), so a late ack of a redelivered message fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Receipt {
    pub seq: Seq,
    /// The message's delivery count at that delivery (1 for the first).
    pub delivery: u32,
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.seq, self.delivery)
    }
}

/// A receipt string was not `<seq>-<delivery>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed receipt {0:?}")]
pub struct MalformedReceipt(pub String);

impl FromStr for Receipt {
    type Err = MalformedReceipt;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || MalformedReceipt(s.to_owned());
        let (seq, delivery) = s.split_once('-').ok_or_else(malformed)?;
        Ok(Self {
            seq: seq.parse().map_err(|_| malformed())?,
            delivery: delivery.parse().map_err(|_| malformed())?,
        })
    }
}

/// Why a message was dead-lettered (the `reason` of an x-death record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeadLetterReason {
    /// Nacked with the dead-letter action.
    #[serde(rename = "rejected")]
    Rejected,
    /// Its TTL ran out while it waited.
    #[serde(rename = "expired")]
    Expired,
    /// Dropped by an overflow policy.
    #[serde(rename = "maxlen")]
    Maxlen,
    /// It would have been delivered more than `delivery_limit` times.
    #[serde(rename = "delivery_limit")]
    DeliveryLimit,
}

/// How often this message already died in this queue for one reason. The
/// broker fills these in from the message's x-death header when it routes a
/// dead letter back into its original queue (retry loops), so counts keep
/// growing across cycles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeathRecord {
    pub reason: DeadLetterReason,
    pub count: u32,
    pub first_death_ms: u64,
}

/// One message of a publish batch, as the broker proposes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishMessage {
    #[serde(default)]
    pub message_id: Option<String>,
    pub body_ref: BodyRef,
    /// Body size in bytes (counts towards `max_length_bytes`).
    pub size: u64,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Messages with the same group key are delivered one at a time, in order.
    #[serde(default)]
    pub group: Option<String>,
    /// Not deliverable before `now + delay_ms`.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Per-message TTL; the shorter of this and the queue's applies.
    #[serde(default)]
    pub expiration_ms: Option<u64>,
    /// Delivery priority (none = 0): higher first, FIFO within a priority;
    /// a message group keeps its own order.
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deaths: Vec<DeathRecord>,
    /// A dead letter or a redriven message re-entering a queue: the dedup
    /// window neither drops it nor remembers it (it is not a new publish).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub republished: bool,
}

impl PublishMessage {
    /// A message with nothing but its body: no id, routing key, headers,
    /// group, delay, expiry or priority. Fill in what differs with struct
    /// update syntax.
    pub fn new(body_ref: BodyRef, size: u64) -> Self {
        PublishMessage {
            message_id: None,
            body_ref,
            size,
            routing_key: String::new(),
            headers: BTreeMap::new(),
            group: None,
            delay_ms: None,
            expiration_ms: None,
            priority: None,
            deaths: Vec::new(),
            republished: false,
        }
    }
}

/// Metadata kept per stored message and handed back with every delivery,
/// peek and dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub message_id: Option<String>,
    pub size: u64,
    pub routing_key: String,
    pub headers: BTreeMap<String, String>,
    pub group: Option<String>,
    pub priority: Option<u8>,
    /// State-machine time at which it was stored.
    pub published_at_ms: u64,
    /// Absolute per-message expiry, from `expiration_ms`.
    pub expires_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deaths: Vec<DeathRecord>,
    /// The message id, routing key and headers were not kept in memory
    /// (a plain message of the compact backlog): they are in the publish
    /// entry at `body_ref`, and the broker fills them in from there with
    /// [`MessageMeta::fill_from`] when it reads the body (issue 21).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_log: bool,
}

/// A message as the state machine reports it (peek, redrive, dead letters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub seq: Seq,
    pub body_ref: BodyRef,
    pub delivery_count: u32,
    pub meta: MessageMeta,
}

/// Where a live message is. Exactly one of these at any time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Location {
    /// Waiting in the ready queue, deliverable by priority, then seq.
    Ready,
    /// Not deliverable before `due_ms` (publish delay or retry backoff).
    Delayed { due_ms: u64 },
    /// Delivered and leased to a consumer until `lease_deadline_ms`.
    Unacked {
        consumer: ConsumerId,
        lease_deadline_ms: u64,
    },
}

/// One live message: metadata plus its place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub seq: Seq,
    pub body_ref: BodyRef,
    /// How many times it was delivered (0 until the first delivery).
    pub delivery_count: u32,
    pub meta: MessageMeta,
    pub location: Location,
}

impl Message {
    pub(crate) fn view(&self) -> MessageView {
        MessageView {
            seq: self.seq,
            body_ref: self.body_ref,
            delivery_count: self.delivery_count,
            meta: self.meta.clone(),
        }
    }

    /// A delayed message that was delivered before is a retry: it still holds
    /// its group's turn, so later messages of the group wait for it.
    pub(crate) fn holds_group_turn(&self) -> bool {
        match self.location {
            Location::Ready => false,
            Location::Unacked { .. } => true,
            Location::Delayed { .. } => self.delivery_count > 0,
        }
    }

    pub(crate) fn receipt(&self) -> Receipt {
        Receipt {
            seq: self.seq,
            delivery: self.delivery_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_through_strings() {
        let receipt = Receipt {
            seq: 42,
            delivery: 3,
        };
        assert_eq!(receipt.to_string(), "42-3");
        assert_eq!("42-3".parse::<Receipt>(), Ok(receipt));
        assert!("42".parse::<Receipt>().is_err());
        assert!("x-1".parse::<Receipt>().is_err());
    }
}

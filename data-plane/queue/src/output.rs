//! What applying a command produces: the reply the broker turns into an HTTP
//! response, and the dead letters it publishes (or only counts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::RedriveTarget;
use crate::error::QueueError;
use crate::message::{
    BodyRef, ConsumerId, DeadLetterReason, MessageMeta, MessageView, Receipt, Seq,
};

/// The outcome of one applied command.
///
/// Dead letters sit beside the result, not inside it: the timers that run at
/// the start of every command may dead-letter messages even when the command
/// itself then fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub result: Result<Reply, QueueError>,
    pub dead_letters: Vec<DeadLetter>,
}

/// The command-specific answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Reply {
    Published {
        results: Vec<PublishResult>,
    },
    Received {
        deliveries: Vec<Delivery>,
    },
    /// Per receipt: the acked message's seq, or why not; and what the
    /// ack's `refill` leased to its consumer.
    Acked {
        results: Vec<Result<Seq, QueueError>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refilled: Vec<Delivery>,
    },
    Nacked {
        outcome: NackOutcome,
    },
    LeaseExtended {
        lease_deadline_ms: u64,
    },
    /// `active`: whether this consumer is the one receiving (always true
    /// without single-active-consumer).
    ConsumerUp {
        active: bool,
    },
    /// How many of its unacked messages went back (or were dead-lettered).
    ConsumerDown {
        returned: u64,
    },
    Ticked,
    Purged {
        count: u64,
    },
    SettingsUpdated,
    Redriven {
        messages: Vec<Redriven>,
    },
    Settled {
        count: u64,
    },
}

/// Result of publishing one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum PublishResult {
    Stored {
        seq: Seq,
    },
    /// Same message id within the dedup window; nothing stored.
    Duplicate {
        seq: Seq,
    },
    /// Over a limit with `reject-publish`; nothing stored.
    Rejected {
        reason: RejectReason,
    },
    /// Over a limit with overflow `dead-letter`; see the dead letters.
    DeadLettered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    MaxLength,
    MaxLengthBytes,
}

/// One leased message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub receipt: Receipt,
    pub seq: Seq,
    pub delivery_count: u32,
    /// Delivered before (RabbitMQ's redelivered flag).
    pub redelivered: bool,
    pub body_ref: BodyRef,
    pub lease_deadline_ms: u64,
    pub meta: MessageMeta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum NackOutcome {
    Requeued,
    Delayed { due_ms: u64 },
    DeadLettered,
}

/// Where to publish a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterTarget {
    pub exchange: String,
    pub routing_key: String,
}

/// An x-death-like record of a message leaving the queue for good. The
/// broker adds the queue name and publishes it to `target`; without a target
/// the message is dropped and the event only feeds metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// None when the message was refused at publish (overflow dead-letter).
    pub seq: Option<Seq>,
    pub body_ref: BodyRef,
    pub delivery_count: u32,
    /// Metadata with `deaths` already updated for this death.
    pub meta: MessageMeta,
    pub reason: DeadLetterReason,
    /// Deaths of this message in this queue for this reason, this one included.
    pub count: u32,
    pub first_death_ms: u64,
    pub time_ms: u64,
    pub target: Option<DeadLetterTarget>,
    /// Set when `target` is: the body stays pinned in the log until the
    /// broker settles this id (at-least-once dead-lettering).
    pub outbox_id: Option<u64>,
    /// `target.routing_key` is to be the message's own, which is still in
    /// the log (`meta.in_log`): [`DeadLetter::fill_from`] sets it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routing_key_from_message: bool,
}

/// A message taken out by `Redrive`, waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redriven {
    pub outbox_id: u64,
    pub message: MessageView,
    /// Where the redrive asked for it to go.
    #[serde(default)]
    pub target: RedriveTarget,
}

/// A redriven message as the outbox keeps it.
///
/// The message's fields sit flat beside the outbox entry's `kind` tag, as
/// they did when the entry was a bare `MessageView`; `target` was added
/// beside them and defaults to the origin, so snapshots written before it
/// existed restore unchanged (those entries were always sent to their
/// origin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveEntry {
    #[serde(flatten)]
    pub message: MessageView,
    #[serde(default, skip_serializing_if = "RedriveTarget::is_origin")]
    pub target: RedriveTarget,
}

/// Something the broker must republish, kept until it settles it: a new
/// leader finds unfinished work in `QueueState::outbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OutboxEntry {
    DeadLetter(DeadLetter),
    Redrive(RedriveEntry),
}

impl OutboxEntry {
    /// The body this entry pins in the log until it is settled.
    pub fn body_ref(&self) -> BodyRef {
        match self {
            Self::DeadLetter(dead_letter) => dead_letter.body_ref,
            Self::Redrive(entry) => entry.message.body_ref,
        }
    }
}

/// Counters for metrics and prefetch windows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub ready: u64,
    pub unacked: u64,
    pub delayed: u64,
    pub ready_bytes: u64,
    /// Bytes of every live message (ready, delayed, unacked): what the queue
    /// counts against the tenant's storage quota.
    pub bytes: u64,
    /// Unacked messages per consumer (the broker's prefetch windows).
    pub consumers: BTreeMap<ConsumerId, u64>,
    /// Single-active-consumer: who receives now.
    pub active_consumer: Option<ConsumerId>,
    /// Dead letters and redriven messages not yet settled.
    pub outbox: u64,
}

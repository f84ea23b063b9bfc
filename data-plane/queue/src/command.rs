//! Commands: what the broker proposes through Raft. They are written to the
//! log, so they are serde types, and they carry the proposer's clock because
//! the state machine never reads one.

use serde::{Deserialize, Serialize};

use crate::message::{ConsumerId, PublishMessage, Receipt};
use crate::settings::QueueSettings;

/// A command with the time at which the leader proposed it. Replicas apply
/// the same `now_ms`, so timers fire identically everywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedCommand {
    pub now_ms: u64,
    pub command: Command,
}

impl TimedCommand {
    pub fn new(now_ms: u64, command: Command) -> Self {
        Self { now_ms, command }
    }
}

/// Every state change of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Command {
    /// Store a batch of messages (one result per message).
    Publish { messages: Vec<PublishMessage> },
    /// Lease up to `max_messages` ready messages to `consumer`
    /// (`lease_ms` defaults to the queue's).
    Receive {
        consumer: ConsumerId,
        max_messages: u32,
        #[serde(default)]
        lease_ms: Option<u64>,
    },
    /// Settle deliveries for good (one result per receipt); with `refill`,
    /// then lease its consumer the messages it now has room for, in the
    /// same entry. A push consumer's next messages ride on its ack, so
    /// prefetch 1 costs one commit per message, not two (RabbitMQ's quorum
    /// queues likewise deliver as a side effect of a settle).
    Ack {
        receipts: Vec<Receipt>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refill: Option<Refill>,
    },
    /// Give a delivery back.
    Nack {
        receipt: Receipt,
        action: NackAction,
    },
    /// Set a delivery's lease to end `lease_ms` from now (0 returns it at once).
    ExtendLease { receipt: Receipt, lease_ms: u64 },
    /// Register a consumer (single-active-consumer takes the first registered).
    ConsumerUp { consumer: ConsumerId },
    /// A consumer left: its unacked messages go back to ready, redelivered.
    ConsumerDown { consumer: ConsumerId },
    /// Let time pass: leases, delays, TTLs and dedup entries run out.
    Tick,
    /// Drop every ready message (unacked and delayed ones stay).
    Purge,
    /// Replace the settings.
    UpdateSettings { settings: QueueSettings },
    /// Take up to `max_messages` ready messages out for the broker to
    /// republish to `target` (dead-letter queue redrive); they wait in the
    /// outbox with their target, so a broker that restarts before settling
    /// them still sends them where the redrive asked. Entries written before
    /// the target was recorded decode as [`RedriveTarget::Origin`], which is
    /// where such entries always went.
    Redrive {
        max_messages: u32,
        #[serde(default, skip_serializing_if = "RedriveTarget::is_origin")]
        target: RedriveTarget,
    },
    /// The broker republished these outbox entries; forget them.
    Settle { outbox_ids: Vec<u64> },
}

/// Where a redrive sends the messages it takes out. The state machine only
/// keeps it (in the command, the outbox and the reply); the broker resolves
/// it when it republishes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "to")]
pub enum RedriveTarget {
    /// The queue each message was dead-lettered from (its `x-death-queue`
    /// header); a message without one goes back to the end of its queue.
    #[default]
    Origin,
    /// Through this exchange, with each message's routing key and headers.
    Exchange { name: String },
    /// Straight into this queue.
    Queue { name: String },
}

impl RedriveTarget {
    /// The default target, left out of serialized commands and outbox
    /// entries so they read exactly as before targets were recorded.
    pub fn is_origin(&self) -> bool {
        matches!(self, Self::Origin)
    }
}

/// A registered consumer's prefetch window, topped up after its ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refill {
    pub consumer: ConsumerId,
    /// Lease until the consumer holds this many unacked messages.
    pub prefetch: u32,
    /// The leases' length (default the queue's), as for `Receive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

/// What to do with a nacked delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum NackAction {
    /// Requeue after the queue's retry backoff, or at once when none is set.
    Requeue,
    /// Requeue at once, whatever the retry backoff.
    RequeueNow,
    /// Requeue after `delay_ms`.
    RequeueAfter { delay_ms: u64 },
    /// Dead-letter it now (reason `rejected`).
    DeadLetter,
}

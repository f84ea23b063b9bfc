//! Indexes over the live messages: the ready queue in seq order, what may be
//! delivered next, lease deadlines, delay due times, per-message expiries,
//! per-consumer unacked sets and the body references behind the release
//! cursor. They are derived data — a snapshot omits them and restoring
//! rebuilds them — so every change goes through `add` and `remove`, which
//! keep them in step with the message's `Location`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::message::{BodyRef, ConsumerId, Location, Message, Seq};
use crate::message_groups::MessageGroups;

/// Where a message sits among the deliverable ones: higher priority first,
/// then lower seq (FIFO within a priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DeliveryKey(Reverse<u8>, Seq);

impl DeliveryKey {
    pub fn new(priority: u8, seq: Seq) -> Self {
        DeliveryKey(Reverse(priority), seq)
    }

    pub fn of(msg: &Message) -> Self {
        DeliveryKey::new(msg.meta.priority.unwrap_or(0), msg.seq)
    }

    pub fn seq(&self) -> Seq {
        self.1
    }
}

/// The messages a consumer may take now, in delivery order.
pub(crate) type Deliverable = BTreeSet<DeliveryKey>;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Indexes {
    /// Every ready message of the rich store, FIFO by seq (peek, purge,
    /// TTL, drop-head, redrive). The plain ones are the compact backlog,
    /// already in seq order: `QueueState::ready_seqs` merges the two.
    pub ready: BTreeSet<Seq>,
    /// Bytes of every ready message, plain ones included.
    pub ready_bytes: u64,
    /// Bytes of every live message: ready, delayed and unacked.
    pub live_bytes: u64,
    /// Rich ready messages a consumer may take now: ungrouped ones and the
    /// head of every group whose turn is free. Receive takes the highest
    /// priority, then the lowest seq; the backlog's oldest plain message
    /// (priority 0, no group) competes with the first of these.
    pub deliverable: Deliverable,
    pub groups: MessageGroups,
    /// Delayed messages by due time.
    pub delayed: BTreeSet<(u64, Seq)>,
    /// Unacked messages by lease deadline.
    pub leases: BTreeSet<(u64, Seq)>,
    /// Ready messages with a per-message expiry, by expiry. The queue-wide
    /// TTL needs no index: stored times grow with seq, so the oldest ready
    /// message is always the first to expire.
    pub expiring: BTreeSet<(u64, Seq)>,
    pub unacked_by_consumer: BTreeMap<ConsumerId, BTreeSet<Seq>>,
    /// Log index → how many rich messages and outbox entries reference it.
    /// Plain messages need no count: seqs are given out in log order, so
    /// the oldest plain message has the lowest log index of them all.
    pub body_refs: BTreeMap<u64, u32>,
    /// Dedup entries in seq (hence time) order, for expiring them.
    pub dedup_by_seq: BTreeMap<Seq, String>,
    /// Attached consumers by attach order; the first is the single active one.
    pub attach_order: BTreeMap<u64, ConsumerId>,
}

impl Indexes {
    /// Count a plain message of the backlog (only its bytes are indexed).
    pub fn add_plain(&mut self, size: u64) {
        self.live_bytes += size;
        self.ready_bytes += size;
    }

    pub fn remove_plain(&mut self, size: u64) {
        self.live_bytes -= size;
        self.ready_bytes -= size;
    }

    /// Index a message at its current location.
    pub fn add(&mut self, msg: &Message, groups_on: bool) {
        self.add_body_ref(msg.body_ref);
        self.live_bytes += msg.meta.size;
        let seq = msg.seq;
        let group = group_of(msg, groups_on);
        match &msg.location {
            Location::Ready => {
                self.ready.insert(seq);
                self.ready_bytes += msg.meta.size;
                if let Some(at) = msg.meta.expires_at_ms {
                    self.expiring.insert((at, seq));
                }
                match group {
                    Some(key) => {
                        let priority = msg.meta.priority.unwrap_or(0);
                        self.groups.add_ready(key, seq, priority);
                    }
                    None => {
                        self.deliverable.insert(DeliveryKey::of(msg));
                    }
                }
            }
            Location::Delayed { due_ms } => {
                self.delayed.insert((*due_ms, seq));
            }
            Location::Unacked {
                consumer,
                lease_deadline_ms,
            } => {
                self.leases.insert((*lease_deadline_ms, seq));
                match self.unacked_by_consumer.get_mut(consumer) {
                    Some(set) => {
                        set.insert(seq);
                    }
                    None => {
                        self.unacked_by_consumer
                            .insert(consumer.clone(), BTreeSet::from([seq]));
                    }
                }
            }
        }
        if let Some(key) = group {
            if msg.holds_group_turn() {
                self.groups.take_turn(key);
            }
            self.groups.refresh(key, &mut self.deliverable);
        }
    }

    /// Forget a message's current location (before moving or removing it).
    pub fn remove(&mut self, msg: &Message, groups_on: bool) {
        self.remove_body_ref(msg.body_ref);
        self.live_bytes -= msg.meta.size;
        let seq = msg.seq;
        let group = group_of(msg, groups_on);
        match &msg.location {
            Location::Ready => {
                self.ready.remove(&seq);
                self.ready_bytes -= msg.meta.size;
                if let Some(at) = msg.meta.expires_at_ms {
                    self.expiring.remove(&(at, seq));
                }
                match group {
                    Some(key) => self.groups.remove_ready(key, seq),
                    None => {
                        self.deliverable.remove(&DeliveryKey::of(msg));
                    }
                }
            }
            Location::Delayed { due_ms } => {
                self.delayed.remove(&(*due_ms, seq));
            }
            Location::Unacked {
                consumer,
                lease_deadline_ms,
            } => {
                self.leases.remove(&(*lease_deadline_ms, seq));
                if let Some(set) = self.unacked_by_consumer.get_mut(consumer) {
                    set.remove(&seq);
                    if set.is_empty() {
                        self.unacked_by_consumer.remove(consumer);
                    }
                }
            }
        }
        if let Some(key) = group {
            if msg.holds_group_turn() {
                self.groups.give_turn_back(key);
            }
            self.groups.refresh(key, &mut self.deliverable);
        }
    }

    pub fn add_body_ref(&mut self, body_ref: BodyRef) {
        *self.body_refs.entry(body_ref.log_index).or_default() += 1;
    }

    pub fn remove_body_ref(&mut self, body_ref: BodyRef) {
        if let Some(count) = self.body_refs.get_mut(&body_ref.log_index) {
            *count -= 1;
            if *count == 0 {
                self.body_refs.remove(&body_ref.log_index);
            }
        }
    }
}

/// The group a message is dispatched under, if groups are on and it has one.
pub(crate) fn group_of(msg: &Message, groups_on: bool) -> Option<&str> {
    if groups_on {
        msg.meta.group.as_deref()
    } else {
        None
    }
}

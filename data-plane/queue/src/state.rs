//! The queue state machine: its data, `apply` (the only way to change it),
//! and the read-only views the broker serves from the leader.
//!
//! `apply` is a deterministic function of the state, the command, the log
//! index and the `now_ms` carried in the command: no clock, no randomness,
//! no hash-ordered iteration. Every replica applying the same log ends in the
//! same state with the same outputs.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backlog::{Backlog, Plain};
use crate::command::{Command, TimedCommand};
use crate::error::QueueError;
use crate::index::{DeliveryKey, Indexes};
use crate::message::{ConsumerId, Message, MessageView, Seq};
use crate::output::{Applied, OutboxEntry, Reply, Stats};
use crate::settings::QueueSettings;
use crate::store::MessageStore;

/// A message id seen by dedup, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DedupEntry {
    pub seq: Seq,
    pub at_ms: u64,
}

/// The replicated state of one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueState {
    pub(crate) settings: QueueSettings,
    pub(crate) applied_index: u64,
    /// Highest `now_ms` applied so far. Time never runs backwards here even
    /// when a new leader's clock is behind the old one's.
    pub(crate) clock_ms: u64,
    pub(crate) next_seq: Seq,
    /// Messages kept whole: every one that is not plain (see `backlog`).
    pub(crate) messages: MessageStore,
    /// Plain ready messages, compact. A seq is in one of the two stores.
    pub(crate) backlog: Backlog,
    /// Consumers registered with `ConsumerUp` (or by receiving under
    /// single-active-consumer) → attach order.
    pub(crate) attached: BTreeMap<ConsumerId, u64>,
    pub(crate) next_attach: u64,
    /// Attached consumers that only pull (attached by receiving, never
    /// registered with `ConsumerUp`) → the clock of their last receive. A
    /// pull consumer has no connection whose end could detach it, so it is
    /// detached once it holds nothing and has not received for a lease
    /// (see `detach_idle_pull_consumers`); else a dead active consumer
    /// would stall a single-active-consumer queue for good.
    pub(crate) pulling: BTreeMap<ConsumerId, u64>,
    pub(crate) dedup: BTreeMap<String, DedupEntry>,
    pub(crate) outbox: BTreeMap<u64, OutboxEntry>,
    pub(crate) next_outbox_id: u64,
    pub(crate) idx: Indexes,
}

impl QueueState {
    pub fn new(settings: QueueSettings) -> Self {
        Self {
            settings,
            applied_index: 0,
            clock_ms: 0,
            next_seq: 1,
            messages: MessageStore::default(),
            backlog: Backlog::default(),
            attached: BTreeMap::new(),
            next_attach: 0,
            pulling: BTreeMap::new(),
            dedup: BTreeMap::new(),
            outbox: BTreeMap::new(),
            next_outbox_id: 1,
            idx: Indexes::default(),
        }
    }

    /// Apply one command from the log entry at `log_index`. Several commands
    /// may share an index (a batched entry); indexes must not go down.
    pub fn apply(&mut self, log_index: u64, command: TimedCommand) -> Applied {
        if log_index < self.applied_index {
            return Applied {
                result: Err(QueueError::LogIndexRegressed {
                    applied: self.applied_index,
                    got: log_index,
                }),
                dead_letters: Vec::new(),
            };
        }
        self.applied_index = log_index;
        self.clock_ms = self.clock_ms.max(command.now_ms);
        let mut dead = Vec::new();
        self.run_timers(&mut dead);
        let result = match command.command {
            Command::Publish { messages } => Ok(self.publish(messages, &mut dead)),
            Command::Receive {
                consumer,
                max_messages,
                lease_ms,
            } => self.receive(consumer, max_messages, lease_ms, &mut dead),
            Command::Ack { receipts, refill } => Ok(self.ack(&receipts, refill, &mut dead)),
            Command::Nack { receipt, action } => self.nack(receipt, action, &mut dead),
            Command::ExtendLease { receipt, lease_ms } => {
                self.extend_lease(receipt, lease_ms, &mut dead)
            }
            Command::ConsumerUp { consumer } => Ok(self.consumer_up(consumer)),
            Command::ConsumerDown { consumer } => Ok(self.consumer_down(&consumer, &mut dead)),
            Command::Tick => Ok(Reply::Ticked),
            Command::Purge => Ok(self.purge()),
            Command::UpdateSettings { settings } => Ok(self.update_settings(settings, &mut dead)),
            Command::Redrive {
                max_messages,
                target,
            } => Ok(self.redrive(max_messages, target)),
            Command::Settle { outbox_ids } => Ok(self.settle(&outbox_ids)),
        };
        Applied {
            result,
            dead_letters: dead,
        }
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// State-machine time: the highest `now_ms` applied.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Log entries below this index hold no body that is still needed (no
    /// ready, delayed or unacked message and no unsettled outbox entry points
    /// into them): once a snapshot covers them they may be purged.
    pub fn release_cursor(&self) -> u64 {
        let rich = self
            .idx
            .body_refs
            .first_key_value()
            .map(|(&lowest, _)| lowest);
        let plain = self.backlog.first().map(|plain| plain.body_ref.log_index);
        [rich, plain]
            .into_iter()
            .flatten()
            .fold(self.applied_index, u64::min)
    }

    pub fn stats(&self) -> Stats {
        let mut consumers: BTreeMap<ConsumerId, u64> = self
            .attached
            .keys()
            .map(|consumer| (consumer.clone(), 0))
            .collect();
        for (consumer, unacked) in &self.idx.unacked_by_consumer {
            consumers.insert(consumer.clone(), unacked.len() as u64);
        }
        Stats {
            ready: self.ready_len() as u64,
            unacked: self.idx.leases.len() as u64,
            delayed: self.idx.delayed.len() as u64,
            ready_bytes: self.idx.ready_bytes,
            bytes: self.idx.live_bytes,
            consumers,
            active_consumer: self.active_consumer().cloned(),
            outbox: self.outbox.len() as u64,
        }
    }

    /// How many unacked messages `consumer` holds (its prefetch window's
    /// use), without building the whole of [`Self::stats`].
    pub fn held_by(&self, consumer: &ConsumerId) -> u64 {
        self.idx
            .unacked_by_consumer
            .get(consumer)
            .map_or(0, |seqs| seqs.len() as u64)
    }

    /// The first `max` ready messages in publish (seq) order, untouched.
    /// Also the read-only half of redrive: what `Redrive` would take.
    /// A plain message's view has `meta.in_log` set: the broker fills in
    /// its id, routing key and headers from the log.
    pub fn peek(&self, max: usize) -> Vec<MessageView> {
        self.ready_seqs()
            .take(max)
            .filter_map(|seq| self.get(seq))
            .map(|msg| msg.view())
            .collect()
    }

    /// A live message: borrowed when kept whole, unpacked when plain (then
    /// its `meta.in_log` is set).
    pub fn message(&self, seq: Seq) -> Option<Cow<'_, Message>> {
        self.get(seq)
    }

    /// Every live message (ready, delayed, unacked) in seq order.
    pub fn messages(&self) -> impl Iterator<Item = Cow<'_, Message>> {
        merge_by_seq(
            self.messages.values().map(Cow::Borrowed),
            self.backlog.iter().map(|plain| Cow::Owned(plain.message())),
            |msg| msg.seq,
        )
    }

    /// Dead letters and redriven messages the broker has not settled yet. A
    /// new leader republishes these.
    pub fn outbox(&self) -> impl Iterator<Item = (u64, &OutboxEntry)> {
        self.outbox.iter().map(|(id, entry)| (*id, entry))
    }

    /// Single-active-consumer: the consumer that receives now.
    pub fn active_consumer(&self) -> Option<&ConsumerId> {
        if !self.settings.single_active_consumer {
            return None;
        }
        self.idx
            .attach_order
            .first_key_value()
            .map(|(_, consumer)| consumer)
    }

    /// When the next timer (lease, delay, TTL, dedup window, idle pull
    /// consumer) falls due: the
    /// broker proposes a `Tick` then, so nothing waits for unrelated traffic.
    pub fn next_timer_ms(&self) -> Option<u64> {
        let lease = self.idx.leases.first().map(|(at, _)| *at);
        let delay = self.idx.delayed.first().map(|(at, _)| *at);
        let expiry = self.idx.expiring.first().map(|(at, _)| *at);
        let ttl = self.settings.message_ttl_ms.and_then(|ttl| {
            let msg = self.get(self.ready_first()?)?;
            Some(msg.meta.published_at_ms.saturating_add(ttl))
        });
        let dedup = self.idx.dedup_by_seq.first_key_value().and_then(|(_, id)| {
            let entry = self.dedup.get(id)?;
            Some(
                entry
                    .at_ms
                    .saturating_add(self.settings.dedup_window_ms.unwrap_or(0)),
            )
        });
        let idle = self
            .pulling
            .iter()
            .filter_map(|(consumer, seen)| self.pull_idle_deadline(consumer, *seen))
            .min();
        [lease, delay, expiry, ttl, dedup, idle]
            .into_iter()
            .flatten()
            .min()
    }

    fn groups_on(&self) -> bool {
        self.settings.message_groups
    }

    /// Store a newly published message at its location: in the compact
    /// backlog when it is plain (its id, routing key and headers are then
    /// dropped here — the publish entry keeps them), else whole.
    pub(crate) fn insert(&mut self, msg: Message) {
        if let Some(plain) = Plain::published(&msg)
            && self.backlog.push(plain).is_ok()
        {
            self.idx.add_plain(plain.size);
            return;
        }
        self.insert_whole(msg);
    }

    fn insert_whole(&mut self, msg: Message) {
        self.idx.add(&msg, self.groups_on());
        self.messages.insert(msg);
    }

    /// Take a message out of the queue for good.
    pub(crate) fn take(&mut self, seq: Seq) -> Option<Message> {
        if let Some(msg) = self.messages.remove(&seq) {
            self.idx.remove(&msg, self.groups_on());
            return Some(msg);
        }
        let plain = self.backlog.remove(seq)?;
        self.idx.remove_plain(plain.size);
        Some(plain.message())
    }

    /// Change a live message (its location, its delivery count) keeping the
    /// indexes in step. A plain message that changes is kept whole from
    /// then on: leased, delayed or redelivered, it is no longer plain.
    pub(crate) fn relocate(&mut self, seq: Seq, change: impl FnOnce(&mut Message)) {
        let groups_on = self.groups_on();
        if let Some(msg) = self.messages.get_mut(&seq) {
            self.idx.remove(msg, groups_on);
            change(msg);
            self.idx.add(msg, groups_on);
        } else if let Some(plain) = self.backlog.remove(seq) {
            self.idx.remove_plain(plain.size);
            let mut msg = plain.message();
            change(&mut msg);
            self.insert_whole(msg);
        }
    }

    /// A live message wherever it is kept.
    pub(crate) fn get(&self, seq: Seq) -> Option<Cow<'_, Message>> {
        match self.messages.get(&seq) {
            Some(msg) => Some(Cow::Borrowed(msg)),
            None => self
                .backlog
                .get(seq)
                .map(|plain| Cow::Owned(plain.message())),
        }
    }

    /// How many messages are ready, plain or not.
    pub(crate) fn ready_len(&self) -> usize {
        self.idx.ready.len() + self.backlog.len()
    }

    /// The oldest ready message.
    pub(crate) fn ready_first(&self) -> Option<Seq> {
        let rich = self.idx.ready.first().copied();
        let plain = self.backlog.first().map(|plain| plain.seq);
        rich.into_iter().chain(plain).min()
    }

    /// Every ready message, oldest first.
    pub(crate) fn ready_seqs(&self) -> impl Iterator<Item = Seq> + '_ {
        merge_by_seq(
            self.idx.ready.iter().copied(),
            self.backlog.iter().map(|plain| plain.seq),
            |seq| *seq,
        )
    }

    /// The message a receive takes next: the first deliverable rich one or
    /// the oldest plain one (priority 0, no group), whichever comes first in
    /// delivery order.
    pub(crate) fn next_deliverable(&self) -> Option<Seq> {
        let rich = self.idx.deliverable.first().copied();
        let plain = self
            .backlog
            .first()
            .map(|plain| DeliveryKey::new(0, plain.seq));
        rich.into_iter().chain(plain).min().map(|key| key.seq())
    }

    /// Attach a consumer (idempotent; keeps its original place in line).
    pub(crate) fn attach(&mut self, consumer: &ConsumerId) {
        if !self.attached.contains_key(consumer) {
            let order = self.next_attach;
            self.next_attach += 1;
            self.attached.insert(consumer.clone(), order);
            self.idx.attach_order.insert(order, consumer.clone());
        }
    }

    pub(crate) fn detach(&mut self, consumer: &ConsumerId) {
        self.pulling.remove(consumer);
        if let Some(order) = self.attached.remove(consumer) {
            self.idx.attach_order.remove(&order);
        }
    }

    /// When a pull consumer last seen at `seen` counts as gone: a lease
    /// (the queue's visibility timeout) after its last receive. None while
    /// it holds unacked messages — it may still be working on them, and
    /// their leases running out is what ends that.
    pub(crate) fn pull_idle_deadline(&self, consumer: &ConsumerId, seen: u64) -> Option<u64> {
        if self.idx.unacked_by_consumer.contains_key(consumer) {
            return None;
        }
        Some(seen.saturating_add(self.settings.lease_ms))
    }
}

/// Two iterators sorted by `key`, merged into one sorted by `key`.
fn merge_by_seq<T>(
    a: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
    key: impl Fn(&T) -> Seq,
) -> impl Iterator<Item = T> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if key(y) < key(x) => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

//! Snapshots: the state serializes as its canonical data only (settings,
//! applied index, clock, messages kept whole, the compact backlog of plain
//! messages, attached consumers and when pull consumers last received,
//! dedup entries, outbox); the indexes are rebuilt on restore. Fields added
//! later default, so older snapshots still load: one written before the
//! backlog existed has every message whole, and they stay whole. Restoring
//! a snapshot and applying the rest of the log equals applying the whole
//! log.
//!
//! `check_invariants` rebuilds the indexes the same way and compares: the
//! incremental bookkeeping of `apply` must always agree with a rebuild.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backlog::Backlog;
use crate::index::{Indexes, group_of};
use crate::message::{ConsumerId, Location, Message, Seq};
use crate::output::OutboxEntry;
use crate::settings::QueueSettings;
use crate::state::{DedupEntry, QueueState};

/// Serialized form, borrowing from the state.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    settings: &'a QueueSettings,
    applied_index: u64,
    clock_ms: u64,
    next_seq: Seq,
    messages: Vec<&'a Message>,
    #[serde(skip_serializing_if = "Backlog::is_empty")]
    backlog: &'a Backlog,
    attached: &'a BTreeMap<ConsumerId, u64>,
    next_attach: u64,
    pulling: &'a BTreeMap<ConsumerId, u64>,
    dedup: &'a BTreeMap<String, DedupEntry>,
    outbox: &'a BTreeMap<u64, OutboxEntry>,
    next_outbox_id: u64,
}

/// Deserialized form.
#[derive(Deserialize)]
struct Snapshot {
    settings: QueueSettings,
    applied_index: u64,
    clock_ms: u64,
    next_seq: Seq,
    messages: Vec<Message>,
    /// Absent in snapshots from before the compact backlog (issue 21).
    #[serde(default)]
    backlog: Backlog,
    attached: BTreeMap<ConsumerId, u64>,
    next_attach: u64,
    /// Absent in snapshots from before pull consumers were tracked: their
    /// pull consumers then count as registered, as they did.
    #[serde(default)]
    pulling: BTreeMap<ConsumerId, u64>,
    dedup: BTreeMap<String, DedupEntry>,
    outbox: BTreeMap<u64, OutboxEntry>,
    next_outbox_id: u64,
}

impl Serialize for QueueState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SnapshotRef {
            settings: &self.settings,
            applied_index: self.applied_index,
            clock_ms: self.clock_ms,
            next_seq: self.next_seq,
            messages: self.messages.values().collect(),
            backlog: &self.backlog,
            attached: &self.attached,
            next_attach: self.next_attach,
            pulling: &self.pulling,
            dedup: &self.dedup,
            outbox: &self.outbox,
            next_outbox_id: self.next_outbox_id,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for QueueState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let snapshot = Snapshot::deserialize(deserializer)?;
        let mut state = QueueState {
            settings: snapshot.settings,
            applied_index: snapshot.applied_index,
            clock_ms: snapshot.clock_ms,
            next_seq: snapshot.next_seq,
            messages: snapshot.messages.into_iter().collect(),
            backlog: snapshot.backlog,
            attached: snapshot.attached,
            next_attach: snapshot.next_attach,
            pulling: snapshot.pulling,
            dedup: snapshot.dedup,
            outbox: snapshot.outbox,
            next_outbox_id: snapshot.next_outbox_id,
            idx: Indexes::default(),
        };
        state.idx = Indexes::build(&state);
        Ok(state)
    }
}

impl Indexes {
    /// Indexes of a state, from its canonical data alone.
    pub(crate) fn build(state: &QueueState) -> Self {
        let mut idx = Indexes::default();
        for msg in state.messages.values() {
            idx.add(msg, state.settings.message_groups);
        }
        // From the page totals: a spilled page is not read to count it.
        idx.add_plain(state.backlog.bytes());
        for entry in state.outbox.values() {
            idx.add_body_ref(entry.body_ref());
        }
        for (id, entry) in &state.dedup {
            idx.dedup_by_seq.insert(entry.seq, id.clone());
        }
        for (consumer, order) in &state.attached {
            idx.attach_order.insert(*order, consumer.clone());
        }
        idx
    }
}

impl QueueState {
    /// Verify that the incrementally kept indexes equal a rebuild, and the
    /// rules that must always hold. For tests and debug assertions; O(n).
    pub fn check_invariants(&self) -> Result<(), String> {
        let rebuilt = Indexes::build(self);
        if rebuilt != self.idx {
            return Err(format!(
                "indexes drifted from the messages:\nkept:    {:?}\nrebuilt: {:?}",
                self.idx, rebuilt
            ));
        }
        if let Some(consumer) = self
            .pulling
            .keys()
            .find(|consumer| !self.attached.contains_key(*consumer))
        {
            return Err(format!("pull consumer {} is not attached", consumer.0));
        }
        for (seq, msg) in self.messages.iter() {
            if *seq != msg.seq || *seq >= self.next_seq {
                return Err(format!("message {} filed under {seq}", msg.seq));
            }
            if self.backlog.contains(*seq) {
                return Err(format!("message {seq} is both whole and in the backlog"));
            }
        }
        if let Some(plain) = self.backlog.iter().find(|p| p.seq >= self.next_seq) {
            return Err(format!("backlog message {} not yet published", plain.seq));
        }
        let located = self.idx.ready.len() + self.idx.delayed.len() + self.idx.leases.len();
        if located != self.messages.len() {
            return Err(format!(
                "{} messages but {located} in ready/delayed/unacked",
                self.messages.len()
            ));
        }
        if self.settings.message_groups {
            let mut turns: BTreeMap<&str, u32> = BTreeMap::new();
            for msg in self.messages.values() {
                if let Some(group) = group_of(msg, true)
                    && msg.holds_group_turn()
                {
                    *turns.entry(group).or_default() += 1;
                }
            }
            if let Some((group, n)) = self.idx.groups.turns().find(|(_, n)| *n > 1) {
                return Err(format!("group {group} has {n} messages out at once"));
            }
            if let Some((group, n)) = turns.iter().find(|(_, n)| **n > 1) {
                return Err(format!("group {group} has {n} messages out at once"));
            }
        }
        let lowest_live = self
            .messages
            .values()
            .map(|msg| msg.body_ref.log_index)
            .chain(self.backlog.iter().map(|plain| plain.body_ref.log_index))
            .chain(self.outbox.values().map(|entry| entry.body_ref().log_index))
            .min();
        if let Some(lowest) = lowest_live
            && self.release_cursor() > lowest
        {
            return Err(format!(
                "release cursor {} above live body at {lowest}",
                self.release_cursor()
            ));
        }
        for msg in self.messages.values() {
            if let Location::Delayed { due_ms } = msg.location
                && due_ms <= self.clock_ms
            {
                return Err(format!("message {} overdue in delayed", msg.seq));
            }
        }
        Ok(())
    }
}

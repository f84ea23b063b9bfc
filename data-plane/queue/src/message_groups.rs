//! Message groups: messages with the same group key are delivered one at a
//! time, in seq order — the next only once the previous is acked or
//! dead-lettered — while different groups go to different consumers in
//! parallel (the "local order per order id" of the seed notes, without
//! sharding queues by hand).
//!
//! A group *offers* its lowest ready message to the queue's deliverable set
//! while no message of the group holds the turn (unacked, or waiting out a
//! retry delay). Each change costs O(log n).

use std::collections::BTreeMap;

use crate::index::{Deliverable, DeliveryKey};
use crate::message::Seq;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GroupState {
    /// Ready messages of the group → their priority. The head is the lowest
    /// seq whatever its priority: a group's order is its publish order; the
    /// head's priority places it among the queue's deliverable messages.
    ready: BTreeMap<Seq, u8>,
    /// Messages holding the turn; at most one while groups stay switched on
    /// (more only right after switching them on at runtime).
    turns: u32,
    /// The ready message this group put into the deliverable set.
    offered: Option<DeliveryKey>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MessageGroups {
    groups: BTreeMap<String, GroupState>,
}

impl MessageGroups {
    pub fn add_ready(&mut self, key: &str, seq: Seq, priority: u8) {
        self.entry(key).ready.insert(seq, priority);
    }

    pub fn remove_ready(&mut self, key: &str, seq: Seq) {
        if let Some(group) = self.groups.get_mut(key) {
            group.ready.remove(&seq);
        }
    }

    pub fn take_turn(&mut self, key: &str) {
        self.entry(key).turns += 1;
    }

    pub fn give_turn_back(&mut self, key: &str) {
        if let Some(group) = self.groups.get_mut(key) {
            group.turns = group.turns.saturating_sub(1);
        }
    }

    /// Re-offer the group's head after any change to it, and forget the
    /// group once it is empty so that one-off keys do not accumulate.
    pub fn refresh(&mut self, key: &str, deliverable: &mut Deliverable) {
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        let wanted = if group.turns == 0 {
            group
                .ready
                .first_key_value()
                .map(|(seq, priority)| DeliveryKey::new(*priority, *seq))
        } else {
            None
        };
        if wanted != group.offered {
            if let Some(old) = group.offered {
                deliverable.remove(&old);
            }
            if let Some(new) = wanted {
                deliverable.insert(new);
            }
            group.offered = wanted;
        }
        if group.ready.is_empty() && group.turns == 0 {
            self.groups.remove(key);
        }
    }

    /// Messages holding the turn, per group (for invariant checks).
    pub fn turns(&self) -> impl Iterator<Item = (&str, u32)> {
        self.groups.iter().map(|(key, g)| (key.as_str(), g.turns))
    }

    fn entry(&mut self, key: &str) -> &mut GroupState {
        // Look up before inserting so the common case allocates no key.
        if !self.groups.contains_key(key) {
            self.groups.insert(key.to_owned(), GroupState::default());
        }
        self.groups.get_mut(key).expect("group inserted just above")
    }
}

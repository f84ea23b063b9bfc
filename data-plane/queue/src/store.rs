//! Where the messages kept whole are (every live message that is not plain:
//! delayed, leased, redelivered, prioritised, grouped, expiring or with a
//! death history — plain ones are the compact `backlog`): a slab of message
//! slots, reused as messages leave, and a seq → slot map.
//!
//! A `BTreeMap<Seq, Message>` keeps whole messages in its nodes, and the
//! nodes of a map filled in seq order are only about half full, so half
//! the memory of a deep backlog would be empty slots. The map here holds
//! 4-byte slot numbers instead, and the slab stays dense: a freed slot is
//! the next one filled. It is given back whole once the queue is empty.

use std::collections::BTreeMap;

use crate::message::{Message, Seq};

#[derive(Debug, Clone, Default)]
pub(crate) struct MessageStore {
    slots: Vec<Option<Message>>,
    /// Slots freed by `remove`, refilled before the slab grows.
    free: Vec<u32>,
    by_seq: BTreeMap<Seq, u32>,
}

impl MessageStore {
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn get(&self, seq: &Seq) -> Option<&Message> {
        let slot = *self.by_seq.get(seq)?;
        self.slots.get(slot as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, seq: &Seq) -> Option<&mut Message> {
        let slot = *self.by_seq.get(seq)?;
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Stores `msg` under its seq, replacing a message with the same seq.
    pub fn insert(&mut self, msg: Message) {
        if let Some(slot) = self.by_seq.get(&msg.seq) {
            self.slots[*slot as usize] = Some(msg);
            return;
        }
        let seq = msg.seq;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(msg);
                slot
            }
            None => {
                self.slots.push(Some(msg));
                // A queue never holds 2^32 messages: its length quota is far lower.
                (self.slots.len() - 1) as u32
            }
        };
        self.by_seq.insert(seq, slot);
    }

    pub fn remove(&mut self, seq: &Seq) -> Option<Message> {
        let slot = self.by_seq.remove(seq)?;
        let msg = self.slots.get_mut(slot as usize)?.take();
        if self.by_seq.is_empty() {
            // Drained: give the slab back rather than keep its peak size.
            self.slots = Vec::new();
            self.free = Vec::new();
        } else {
            self.free.push(slot);
        }
        msg
    }

    /// Every message in seq order.
    pub fn values(&self) -> impl Iterator<Item = &Message> {
        self.by_seq
            .values()
            .filter_map(|slot| self.slots.get(*slot as usize)?.as_ref())
    }

    /// Every message in seq order, with its seq.
    pub fn iter(&self) -> impl Iterator<Item = (&Seq, &Message)> {
        self.by_seq
            .iter()
            .filter_map(|(seq, slot)| Some((seq, self.slots.get(*slot as usize)?.as_ref()?)))
    }
}

impl FromIterator<Message> for MessageStore {
    fn from_iter<I: IntoIterator<Item = Message>>(messages: I) -> Self {
        let mut store = MessageStore::default();
        for msg in messages {
            store.insert(msg);
        }
        store
    }
}

/// Equal when they hold the same messages under the same seqs, wherever
/// the slots are (a restored snapshot packs them differently).
impl PartialEq for MessageStore {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{BodyRef, Location, MessageMeta};

    fn message(seq: Seq) -> Message {
        Message {
            seq,
            body_ref: BodyRef {
                log_index: seq,
                slot: 0,
            },
            delivery_count: 0,
            meta: MessageMeta {
                message_id: None,
                size: 1,
                routing_key: String::new(),
                headers: Default::default(),
                group: None,
                priority: None,
                published_at_ms: 0,
                expires_at_ms: None,
                deaths: Vec::new(),
                in_log: false,
            },
            location: Location::Ready,
        }
    }

    #[test]
    fn freed_slots_are_reused_and_order_is_by_seq() {
        let mut store: MessageStore = (1..=4).map(message).collect();
        assert_eq!(store.remove(&2).map(|m| m.seq), Some(2));
        store.insert(message(9));
        assert_eq!(store.slots.len(), 4, "seq 9 took the slot seq 2 left");
        let seqs: Vec<Seq> = store.values().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 3, 4, 9]);
        assert!(store.get(&2).is_none());
        assert_eq!(store.remove(&2), None);
    }

    #[test]
    fn an_empty_store_gives_its_slab_back() {
        let mut store: MessageStore = (1..=100).map(message).collect();
        for seq in 1..=100 {
            assert!(store.remove(&seq).is_some());
        }
        assert_eq!(store.len(), 0);
        assert_eq!(store.slots.capacity(), 0);
        store.insert(message(101));
        assert_eq!(store.get(&101).map(|m| m.seq), Some(101));
    }

    #[test]
    fn equality_ignores_slot_placement() {
        let mut a: MessageStore = (1..=3).map(message).collect();
        a.remove(&1);
        a.insert(message(4));
        let b: MessageStore = [2, 3, 4].into_iter().map(message).collect();
        assert_ne!(a.slots, b.slots);
        assert_eq!(a, b);
    }
}

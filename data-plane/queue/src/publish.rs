//! Publishing: dedup by message id within a window, the overflow policies,
//! and storing the message ready or delayed.

use crate::dead_letter::Dying;
use crate::message::{DeadLetterReason, Location, Message, MessageMeta, PublishMessage};
use crate::output::{DeadLetter, PublishResult, RejectReason, Reply};
use crate::settings::Overflow;
use crate::state::{DedupEntry, QueueState};

impl QueueState {
    pub(crate) fn publish(
        &mut self,
        batch: Vec<PublishMessage>,
        dead: &mut Vec<DeadLetter>,
    ) -> Reply {
        let results = batch
            .into_iter()
            .map(|message| self.publish_one(message, dead))
            .collect();
        Reply::Published { results }
    }

    fn publish_one(
        &mut self,
        message: PublishMessage,
        dead: &mut Vec<DeadLetter>,
    ) -> PublishResult {
        let now = self.clock_ms;
        let republished = message.republished;
        if !republished && let Some(seq) = self.duplicate_of(message.message_id.as_deref()) {
            return PublishResult::Duplicate { seq };
        }
        let meta = MessageMeta {
            message_id: message.message_id,
            size: message.size,
            routing_key: message.routing_key,
            headers: message.headers,
            group: message.group,
            priority: message.priority,
            published_at_ms: now,
            expires_at_ms: message.expiration_ms.map(|ms| now.saturating_add(ms)),
            deaths: message.deaths,
            in_log: false,
        };
        // Limits count ready messages only (as RabbitMQ does); a delayed
        // message is checked as if it were ready now.
        if self.settings.overflow != Overflow::DropHead
            && let Some(reason) = self.over_limit(meta.size)
        {
            if self.settings.overflow == Overflow::RejectPublish {
                return PublishResult::Rejected { reason };
            }
            let dying = Dying {
                seq: None,
                body_ref: message.body_ref,
                delivery_count: 0,
                meta,
            };
            self.dead_letter(dying, DeadLetterReason::Maxlen, dead);
            return PublishResult::DeadLettered;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let (false, Some(_), Some(id)) =
            (republished, self.settings.dedup_window_ms, &meta.message_id)
        {
            self.remember_message_id(id.clone(), seq, now);
        }
        let location = match message.delay_ms {
            Some(delay) if delay > 0 => Location::Delayed {
                due_ms: now.saturating_add(delay),
            },
            _ => Location::Ready,
        };
        self.insert(Message {
            seq,
            body_ref: message.body_ref,
            delivery_count: 0,
            meta,
            location,
        });
        self.drop_head_while_over_limit(dead);
        PublishResult::Stored { seq }
    }

    /// The seq of an earlier message with this id still inside the window.
    fn duplicate_of(&self, message_id: Option<&str>) -> Option<u64> {
        let window = self.settings.dedup_window_ms?;
        let entry = self.dedup.get(message_id?)?;
        (entry.at_ms.saturating_add(window) > self.clock_ms).then_some(entry.seq)
    }

    fn remember_message_id(&mut self, id: String, seq: u64, now: u64) {
        self.idx.dedup_by_seq.insert(seq, id.clone());
        if let Some(old) = self.dedup.insert(id, DedupEntry { seq, at_ms: now }) {
            self.idx.dedup_by_seq.remove(&old.seq);
        }
    }

    /// Which limit one more ready message of `size` bytes would break.
    fn over_limit(&self, size: u64) -> Option<RejectReason> {
        if let Some(max) = self.settings.max_length
            && self.ready_len() as u64 >= max
        {
            return Some(RejectReason::MaxLength);
        }
        if let Some(max) = self.settings.max_length_bytes
            && self.idx.ready_bytes.saturating_add(size) > max
        {
            return Some(RejectReason::MaxLengthBytes);
        }
        None
    }

    /// Drop-head: drop (or dead-letter, with a dead-letter exchange) the
    /// oldest ready messages until the limits hold again. A single message
    /// larger than `max_length_bytes` is itself dropped.
    pub(crate) fn drop_head_while_over_limit(&mut self, dead: &mut Vec<DeadLetter>) {
        if self.settings.overflow != Overflow::DropHead {
            return;
        }
        loop {
            let over_length = self
                .settings
                .max_length
                .is_some_and(|max| self.ready_len() as u64 > max);
            let over_bytes = self
                .settings
                .max_length_bytes
                .is_some_and(|max| self.idx.ready_bytes > max);
            if !(over_length || over_bytes) {
                return;
            }
            let Some(head) = self.ready_first() else {
                return;
            };
            self.take_and_dead_letter(head, DeadLetterReason::Maxlen, dead);
        }
    }
}

//! Dead-lettering and the outbox.
//!
//! A message leaving for good (rejected, expired, over a length limit, past
//! its delivery limit) becomes a `DeadLetter` event: an x-death-like record
//! with the exchange and routing key to publish it to. With a dead-letter
//! exchange the event also waits in the outbox, pinning its body in the log
//! (the release cursor stays below it) until the broker says it republished
//! it with `Settle` — so a leader crash between apply and publish loses
//! nothing. Redrive uses the same outbox.

use crate::command::RedriveTarget;
use crate::message::{BodyRef, DeadLetterReason, DeathRecord, Message, MessageMeta, Seq};
use crate::output::{DeadLetter, DeadLetterTarget, OutboxEntry, RedriveEntry, Redriven, Reply};
use crate::state::QueueState;

/// The parts of a message a dead letter is made of.
pub(crate) struct Dying {
    pub seq: Option<Seq>,
    pub body_ref: BodyRef,
    pub delivery_count: u32,
    pub meta: MessageMeta,
}

impl From<Message> for Dying {
    fn from(msg: Message) -> Self {
        Self {
            seq: Some(msg.seq),
            body_ref: msg.body_ref,
            delivery_count: msg.delivery_count,
            meta: msg.meta,
        }
    }
}

impl QueueState {
    /// Remove a live message and dead-letter it.
    pub(crate) fn take_and_dead_letter(
        &mut self,
        seq: Seq,
        reason: DeadLetterReason,
        dead: &mut Vec<DeadLetter>,
    ) {
        if let Some(msg) = self.take(seq) {
            self.dead_letter(msg.into(), reason, dead);
        }
    }

    /// Emit the dead letter of a message that is no longer in the queue.
    pub(crate) fn dead_letter(
        &mut self,
        dying: Dying,
        reason: DeadLetterReason,
        dead: &mut Vec<DeadLetter>,
    ) {
        let now = self.clock_ms;
        let mut meta = dying.meta;
        let (count, first_death_ms) = record_death(&mut meta.deaths, reason, now);
        // A plain message's routing key is still in the log: the broker
        // sets the target's from there (`DeadLetter::fill_from`).
        let routing_key_from_message = meta.in_log
            && self.settings.dead_letter_exchange.is_some()
            && self.settings.dead_letter_routing_key.is_none();
        let target = self
            .settings
            .dead_letter_exchange
            .as_ref()
            .map(|exchange| DeadLetterTarget {
                exchange: exchange.clone(),
                routing_key: self
                    .settings
                    .dead_letter_routing_key
                    .clone()
                    .unwrap_or_else(|| meta.routing_key.clone()),
            });
        let outbox_id = target.as_ref().map(|_| self.next_outbox_id());
        let dead_letter = DeadLetter {
            seq: dying.seq,
            body_ref: dying.body_ref,
            delivery_count: dying.delivery_count,
            meta,
            reason,
            count,
            first_death_ms,
            time_ms: now,
            target,
            outbox_id,
            routing_key_from_message,
        };
        if let Some(id) = outbox_id {
            self.idx.add_body_ref(dead_letter.body_ref);
            self.outbox
                .insert(id, OutboxEntry::DeadLetter(dead_letter.clone()));
        }
        dead.push(dead_letter);
    }

    /// Take up to `max` ready messages, oldest first, into the outbox for the
    /// broker to republish to `target` (typically from a dead-letter queue
    /// back to where they came from). The target stays with each entry: a
    /// broker that reopens the queue with entries unsettled sends them to it.
    /// Groups and single-active-consumer do not apply: this is an operator
    /// moving messages, not a consumer.
    pub(crate) fn redrive(&mut self, max: u32, target: RedriveTarget) -> Reply {
        let seqs: Vec<Seq> = self.ready_seqs().take(max as usize).collect();
        let mut messages = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let Some(msg) = self.take(seq) else { continue };
            let id = self.next_outbox_id();
            let view = msg.view();
            self.idx.add_body_ref(view.body_ref);
            let entry = RedriveEntry {
                message: view.clone(),
                target: target.clone(),
            };
            self.outbox.insert(id, OutboxEntry::Redrive(entry));
            messages.push(Redriven {
                outbox_id: id,
                message: view,
                target: target.clone(),
            });
        }
        Reply::Redriven { messages }
    }

    /// Forget outbox entries the broker republished. Unknown ids are
    /// ignored: two leaders may settle the same entry.
    pub(crate) fn settle(&mut self, ids: &[u64]) -> Reply {
        let mut count = 0;
        for id in ids {
            if let Some(entry) = self.outbox.remove(id) {
                self.idx.remove_body_ref(entry.body_ref());
                count += 1;
            }
        }
        Reply::Settled { count }
    }

    fn next_outbox_id(&mut self) -> u64 {
        let id = self.next_outbox_id;
        self.next_outbox_id += 1;
        id
    }
}

/// Count this death in the message's history for this queue: returns the
/// count including this death and the time of the first death.
fn record_death(deaths: &mut Vec<DeathRecord>, reason: DeadLetterReason, now: u64) -> (u32, u64) {
    match deaths.iter_mut().find(|death| death.reason == reason) {
        Some(death) => {
            death.count = death.count.saturating_add(1);
            (death.count, death.first_death_ms)
        }
        None => {
            deaths.push(DeathRecord {
                reason,
                count: 1,
                first_death_ms: now,
            });
            (1, now)
        }
    }
}

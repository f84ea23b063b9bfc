//! Delivery: leasing ready messages to consumers, and settling them — ack,
//! nack (requeue, retry after a backoff, dead-letter), lease extension —
//! with the delivery limit applied whenever a message would go out again.

use crate::command::{NackAction, Refill};
use crate::error::QueueError;
use crate::message::{ConsumerId, DeadLetterReason, Location, Receipt, Seq};
use crate::output::{DeadLetter, Delivery, NackOutcome, Reply};
use crate::state::QueueState;

impl QueueState {
    /// Lease up to `max` deliverable messages, highest priority first, then
    /// lowest seq (FIFO within a priority; a group keeps its own order). Pull
    /// requests from several consumers therefore share the queue round-robin,
    /// and the broker's prefetch windows (from `Stats::consumers`) give fair
    /// dispatch for push consumers.
    pub(crate) fn receive(
        &mut self,
        consumer: ConsumerId,
        max: u32,
        lease_ms: Option<u64>,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<Reply, QueueError> {
        if self.settings.single_active_consumer {
            // Receiving registers the consumer, so it can take over later
            // even if it is not the active one now; it stays registered
            // while it keeps receiving (or holds leases).
            self.note_pull(&consumer);
            if let Some(active) = self.active_consumer()
                && *active != consumer
            {
                return Err(QueueError::NotActiveConsumer {
                    consumer,
                    active: active.clone(),
                });
            }
        }
        let lease_deadline_ms = self
            .clock_ms
            .saturating_add(lease_ms.unwrap_or(self.settings.lease_ms));
        let mut deliveries = Vec::new();
        while deliveries.len() < max as usize {
            let Some(seq) = self.next_deliverable() else {
                break;
            };
            let Some(delivery_count) = self.get(seq).map(|msg| msg.delivery_count) else {
                break;
            };
            // Checked here too, not only when a message comes back, because
            // the limit may have been lowered since.
            if self.settings.delivery_limit_reached(delivery_count) {
                self.take_and_dead_letter(seq, DeadLetterReason::DeliveryLimit, dead);
                continue;
            }
            let leased_to = consumer.clone();
            self.relocate(seq, |msg| {
                msg.delivery_count += 1;
                msg.location = Location::Unacked {
                    consumer: leased_to,
                    lease_deadline_ms,
                };
            });
            if let Some(msg) = self.messages.get(&seq) {
                deliveries.push(Delivery {
                    receipt: msg.receipt(),
                    seq,
                    delivery_count: msg.delivery_count,
                    redelivered: msg.delivery_count > 1,
                    body_ref: msg.body_ref,
                    lease_deadline_ms,
                    meta: msg.meta.clone(),
                });
            }
        }
        Ok(Reply::Received { deliveries })
    }

    pub(crate) fn ack(
        &mut self,
        receipts: &[Receipt],
        refill: Option<Refill>,
        dead: &mut Vec<DeadLetter>,
    ) -> Reply {
        let results = receipts
            .iter()
            .map(|receipt| {
                self.check_receipt(*receipt)?;
                self.take(receipt.seq);
                Ok(receipt.seq)
            })
            .collect();
        let refilled = refill
            .map(|refill| self.refill(refill, dead))
            .unwrap_or_default();
        Reply::Acked { results, refilled }
    }

    /// Lease `refill.consumer` what it takes to hold `refill.prefetch`
    /// unacked messages again. Only a consumer registered with `ConsumerUp`
    /// and still there is refilled: one whose `ConsumerDown` came first is
    /// gone, and leasing to it would strand messages until their leases
    /// ran out. Under single-active-consumer only the active one gets any.
    fn refill(&mut self, refill: Refill, dead: &mut Vec<DeadLetter>) -> Vec<Delivery> {
        let registered = self.attached.contains_key(&refill.consumer)
            && !self.pulling.contains_key(&refill.consumer);
        if !registered {
            return Vec::new();
        }
        let held = self
            .idx
            .unacked_by_consumer
            .get(&refill.consumer)
            .map_or(0, |seqs| seqs.len());
        let room = (refill.prefetch as usize).saturating_sub(held);
        if room == 0 {
            return Vec::new();
        }
        match self.receive(refill.consumer, room as u32, refill.lease_ms, dead) {
            Ok(Reply::Received { deliveries }) => deliveries,
            _ => Vec::new(),
        }
    }

    pub(crate) fn nack(
        &mut self,
        receipt: Receipt,
        action: NackAction,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<Reply, QueueError> {
        self.check_receipt(receipt)?;
        let delay_ms = match action {
            NackAction::DeadLetter => {
                self.take_and_dead_letter(receipt.seq, DeadLetterReason::Rejected, dead);
                return Ok(Reply::Nacked {
                    outcome: NackOutcome::DeadLettered,
                });
            }
            NackAction::Requeue => self.retry_delay_ms(receipt.delivery),
            NackAction::RequeueNow => 0,
            NackAction::RequeueAfter { delay_ms } => delay_ms,
        };
        let outcome = self.give_back(receipt.seq, delay_ms, dead);
        Ok(Reply::Nacked { outcome })
    }

    /// Move a delivery's lease deadline to `lease_ms` from now; 0 gives the
    /// message back at once (SQS's visibility timeout 0).
    pub(crate) fn extend_lease(
        &mut self,
        receipt: Receipt,
        lease_ms: u64,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<Reply, QueueError> {
        self.check_receipt(receipt)?;
        let now = self.clock_ms;
        if lease_ms == 0 {
            self.give_back(receipt.seq, 0, dead);
            return Ok(Reply::LeaseExtended {
                lease_deadline_ms: now,
            });
        }
        let deadline = now.saturating_add(lease_ms);
        self.relocate(receipt.seq, |msg| {
            if let Location::Unacked {
                lease_deadline_ms, ..
            } = &mut msg.location
            {
                *lease_deadline_ms = deadline;
            }
        });
        Ok(Reply::LeaseExtended {
            lease_deadline_ms: deadline,
        })
    }

    /// Attach a consumer that receives and note when, unless it registered
    /// with `ConsumerUp`: such a consumer stays until `ConsumerDown`.
    fn note_pull(&mut self, consumer: &ConsumerId) {
        if !self.attached.contains_key(consumer) || self.pulling.contains_key(consumer) {
            self.pulling.insert(consumer.clone(), self.clock_ms);
        }
        self.attach(consumer);
    }

    /// Detach the pull consumers that hold nothing and have not received
    /// for a lease, so the next consumer in line becomes the single active
    /// one. Run with the other timers, on the command's clock.
    pub(crate) fn detach_idle_pull_consumers(&mut self) {
        let now = self.clock_ms;
        let idle: Vec<ConsumerId> = self
            .pulling
            .iter()
            .filter(|(consumer, seen)| {
                self.pull_idle_deadline(consumer, **seen)
                    .is_some_and(|deadline| deadline <= now)
            })
            .map(|(consumer, _)| consumer.clone())
            .collect();
        for consumer in &idle {
            self.detach(consumer);
        }
    }

    /// Whether a receive by `consumer` that finds nothing ready should still
    /// be proposed (as a `Receive` of no messages) to keep its place on a
    /// single-active-consumer queue: it is not in line yet, or its last
    /// receive is half a lease old. An active puller that long-polls an
    /// empty queue is alive, and must not lose its turn for the quiet.
    pub fn pull_place_needs_renewal(&self, consumer: &ConsumerId, now_ms: u64) -> bool {
        if !self.settings.single_active_consumer {
            return false;
        }
        match self.pulling.get(consumer) {
            Some(seen) => now_ms.saturating_sub(*seen) >= self.settings.lease_ms / 2,
            // Registered with `ConsumerUp` (a push id): its connection keeps it.
            None => !self.attached.contains_key(consumer),
        }
    }

    /// Consumers registered with `ConsumerUp`: push connections, which live
    /// in the broker process serving them. A broker that opens the queue has
    /// none yet, so any listed then were left by a process that ended and
    /// are to be sent `ConsumerDown`.
    pub fn registered_consumers(&self) -> Vec<ConsumerId> {
        self.attached
            .keys()
            .filter(|consumer| !self.pulling.contains_key(*consumer))
            .cloned()
            .collect()
    }

    pub(crate) fn consumer_up(&mut self, consumer: ConsumerId) -> Reply {
        // Registered from now on: no longer detached for being idle.
        self.pulling.remove(&consumer);
        self.attach(&consumer);
        let active = self
            .active_consumer()
            .is_none_or(|active| *active == consumer);
        Reply::ConsumerUp { active }
    }

    /// The consumer is gone: forget it (the next attached consumer becomes
    /// the single active one) and give back everything it held, at once.
    pub(crate) fn consumer_down(
        &mut self,
        consumer: &ConsumerId,
        dead: &mut Vec<DeadLetter>,
    ) -> Reply {
        self.detach(consumer);
        let held: Vec<Seq> = self
            .idx
            .unacked_by_consumer
            .get(consumer)
            .map(|seqs| seqs.iter().copied().collect())
            .unwrap_or_default();
        for &seq in &held {
            self.give_back(seq, 0, dead);
        }
        Reply::ConsumerDown {
            returned: held.len() as u64,
        }
    }

    /// An unacked message whose lease ran out goes back like a nacked one,
    /// after the retry backoff when one is set (a consumer that crashed on it
    /// is as good as a failure).
    pub(crate) fn expire_lease(&mut self, seq: Seq, dead: &mut Vec<DeadLetter>) {
        let delivery_count = self.get(seq).map_or(0, |msg| msg.delivery_count);
        let delay_ms = self.retry_delay_ms(delivery_count);
        self.give_back(seq, delay_ms, dead);
    }

    /// Return an unacked message to ready (or delayed, after `delay_ms`);
    /// dead-letter it instead if another delivery would break the limit.
    fn give_back(&mut self, seq: Seq, delay_ms: u64, dead: &mut Vec<DeadLetter>) -> NackOutcome {
        let Some(delivery_count) = self.get(seq).map(|msg| msg.delivery_count) else {
            return NackOutcome::DeadLettered;
        };
        if self.settings.delivery_limit_reached(delivery_count) {
            self.take_and_dead_letter(seq, DeadLetterReason::DeliveryLimit, dead);
            return NackOutcome::DeadLettered;
        }
        if delay_ms == 0 {
            self.relocate(seq, |msg| msg.location = Location::Ready);
            NackOutcome::Requeued
        } else {
            let due_ms = self.clock_ms.saturating_add(delay_ms);
            self.relocate(seq, |msg| msg.location = Location::Delayed { due_ms });
            NackOutcome::Delayed { due_ms }
        }
    }

    fn retry_delay_ms(&self, delivery_count: u32) -> u64 {
        self.settings
            .retry
            .as_ref()
            .map_or(0, |retry| retry.delay_ms(delivery_count))
    }

    /// A receipt is good while its message is unacked under that very
    /// delivery.
    fn check_receipt(&self, receipt: Receipt) -> Result<(), QueueError> {
        let msg = self
            .get(receipt.seq)
            .ok_or(QueueError::UnknownReceipt(receipt))?;
        let leased = matches!(msg.location, Location::Unacked { .. });
        if leased && msg.delivery_count == receipt.delivery {
            Ok(())
        } else {
            Err(QueueError::StaleReceipt(receipt))
        }
    }
}

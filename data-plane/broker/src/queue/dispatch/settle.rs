//! Acks that free a good part of a push consumer's window go through its
//! queue's dispatcher, which proposes each with a refill of that window:
//! the consumer's next messages are leased in the ack's own commit (with
//! prefetch 1, one commit per message instead of two), and the dispatcher
//! hands them over itself, so a consumer still gets its messages from one
//! task, in the order they were leased. Acks waiting together are proposed
//! together (one group commit).
//!
//! Other acks (a pull consumer's, or one freeing less than
//! [`Window::worth_a_round`] asks) are proposed at once by the request
//! that carries them: they lease nothing, and queueing them behind the
//! dispatcher only added its turn to their latency (measured: a push
//! consumer acking one message of a 100-message window at a time lost 10 %
//! when every ack went through the dispatcher).

use sluice_queue::{Command, ConsumerId, Delivery, Location, QueueState, Receipt, Refill, Reply};
use tokio::sync::oneshot;

use super::round::Window;
use super::{Dispatcher, Dispatchers, Request, Windows};
use crate::queue::{CommandOutcome, GroupError, QueueGroup};

/// An ack handed to the dispatcher, and where its outcome goes.
pub struct Settle {
    pub receipts: Vec<Receipt>,
    pub answer: oneshot::Sender<Result<CommandOutcome, GroupError>>,
}

impl Dispatchers {
    /// Acks `receipts` on `group`: through the group's dispatcher when that
    /// refills a push consumer's window worth refilling, else proposed here.
    pub async fn ack(
        &self,
        group: &QueueGroup,
        receipts: Vec<Receipt>,
    ) -> Result<CommandOutcome, GroupError> {
        let task = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&group.spec.group_id)
            .map(|task| (task.requests.clone(), task.windows.clone()));
        if let Some((requests, windows)) = task
            && worth_refilling(group, &receipts, &windows)
        {
            let (answer, outcome) = oneshot::channel();
            let settle = Settle {
                receipts: receipts.clone(),
                answer,
            };
            // A task that ended before proposing drops the request
            // unanswered; the ack is then proposed here.
            if requests.send(Request::Settle(settle)).is_ok()
                && let Ok(outcome) = outcome.await
            {
                return outcome;
            }
        }
        let command = Command::Ack {
            receipts,
            refill: None,
        };
        group.propose(command, Vec::new()).await
    }
}

/// Whether acking `receipts` leaves the push consumer holding the first of
/// them a window that a dispatch round would serve at once.
fn worth_refilling(group: &QueueGroup, receipts: &[Receipt], windows: &Windows) -> bool {
    let holders: Vec<ConsumerId> = group
        .view()
        .read(|q| receipts.iter().filter_map(|r| holder(q, *r)).collect());
    let pushed = {
        let windows = windows.lock().unwrap_or_else(|e| e.into_inner());
        holders
            .iter()
            .find_map(|holder| Some((holder, *windows.get(holder)?)))
    };
    let Some((consumer, prefetch)) = pushed else {
        return false;
    };
    let acked = holders.iter().filter(|h| *h == consumer).count() as u64;
    let held = group.view().read(|q| q.held_by(consumer));
    Window {
        prefetch,
        unacked: held.saturating_sub(acked),
    }
    .worth_a_round()
}

impl Dispatcher {
    /// Proposes every waiting ack at once, answers each, then hands the
    /// refilled messages to their consumers.
    ///
    /// A consumer is refilled by the last of its acks in the batch only:
    /// proposals made together may reach the log in any order, and one
    /// refill per consumer leaves nothing whose hand-over order could
    /// differ from its lease order (the last ack usually lands last and
    /// sees all the room; if not, the next round serves the rest).
    pub(super) async fn settle(&mut self, settles: Vec<Settle>) {
        let mut refill_of: Vec<Option<Refill>> = settles
            .iter()
            .map(|settle| self.refill_for(&settle.receipts))
            .collect();
        for later in (0..refill_of.len()).rev() {
            let Some(consumer) = refill_of[later].as_ref().map(|r| r.consumer.clone()) else {
                continue;
            };
            for earlier in refill_of.iter_mut().take(later) {
                if earlier.as_ref().is_some_and(|r| r.consumer == consumer) {
                    *earlier = None;
                }
            }
        }
        let proposals = settles.into_iter().zip(refill_of).map(|(settle, refill)| {
            let refilled_consumer = refill.as_ref().map(|r| r.consumer.clone());
            let command = Command::Ack {
                receipts: settle.receipts,
                refill,
            };
            let group = &self.group;
            async move {
                let outcome = group.propose(command, Vec::new()).await;
                (outcome, refilled_consumer, settle.answer)
            }
        });
        let mut refills: Vec<(ConsumerId, Vec<Delivery>)> = Vec::new();
        for (mut outcome, consumer, answer) in futures_util::future::join_all(proposals).await {
            if let (Some(consumer), Ok(outcome)) = (consumer, &mut outcome)
                && let Ok(Reply::Acked { refilled, .. }) = &mut outcome.result
                && !refilled.is_empty()
            {
                refills.push((consumer, std::mem::take(refilled)));
            }
            let _ = answer.send(outcome);
        }
        for (consumer, deliveries) in refills {
            match self.consumers.iter().position(|c| c.id == consumer) {
                Some(index) => self.hand_over(index, deliveries).await,
                // It left while its ack was in flight: its ConsumerDown,
                // applied after the ack, gives these back.
                None => {
                    tracing::debug!(queue = %self.group.spec.queue, consumer = %consumer.0, "refilled a consumer that left")
                }
            }
        }
    }

    /// The window to top up with an ack of `receipts`: that of the push
    /// consumer of ours holding the first of them (acks come from one
    /// consumer; one holding none of ours refills nobody).
    fn refill_for(&self, receipts: &[Receipt]) -> Option<Refill> {
        let consumer = self.group.view().read(|q| {
            receipts.iter().find_map(|receipt| {
                let holder = holder(q, *receipt)?;
                self.consumers.iter().find(|c| c.id == holder)
            })
        })?;
        Some(Refill {
            consumer: consumer.id.clone(),
            prefetch: u32::try_from(consumer.prefetch).unwrap_or(u32::MAX),
            lease_ms: consumer.lease_ms,
        })
    }
}

/// The consumer holding the delivery `receipt` names, if that delivery is
/// still out (a stale receipt's message may be leased to someone else now).
fn holder(queue: &QueueState, receipt: Receipt) -> Option<ConsumerId> {
    let message = queue.message(receipt.seq)?;
    match &message.location {
        Location::Unacked { consumer, .. } if message.delivery_count == receipt.delivery => {
            Some(consumer.clone())
        }
        _ => None,
    }
}

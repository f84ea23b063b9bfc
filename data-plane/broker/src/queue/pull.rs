//! A pull consumer's receive: lease up to `max_messages` ready messages, or
//! wait (long-poll) on the group's apply watch until some are ready or the
//! wait is over. A receive proposes `Receive` only when messages are ready,
//! so an idle long-poll costs no log entry — except the one that renews a
//! single-active-consumer place before it runs out.

use std::time::Duration;

use sluice_queue::{Command, ConsumerId, Reply};
use tokio::time::Instant;

use super::receipts::ReceiptSeal;
use super::{Delivered, QueueGroup, command_error};
use crate::error::{BrokerError, BrokerResult};
use crate::raft::now_ms;

/// What a consumer asks of one receive.
pub struct Receive {
    pub consumer: ConsumerId,
    pub max_messages: u32,
    /// The lease of what it gets (default: the queue's).
    pub lease_ms: Option<u64>,
    /// How long to wait for a message when none is ready.
    pub wait: Duration,
}

/// Leases what `ask` may take from `group`; empty when nothing came within
/// the wait.
pub async fn receive(
    group: &QueueGroup,
    receipts: &ReceiptSeal,
    ask: Receive,
) -> BrokerResult<Vec<Delivered>> {
    let deadline = Instant::now() + ask.wait;
    let mut changes = group.view().subscribe();
    if group
        .view()
        .read(|q| q.pull_place_needs_renewal(&ask.consumer, now_ms()))
    {
        let command = Command::Receive {
            consumer: ask.consumer.clone(),
            max_messages: 0,
            lease_ms: None,
        };
        group
            .propose(command, Vec::new())
            .await?
            .result
            .map_err(command_error)?;
    }
    loop {
        changes.borrow_and_update();
        let ready = group.view().read(|q| q.stats().ready);
        if ready > 0 {
            let command = Command::Receive {
                consumer: ask.consumer.clone(),
                max_messages: ask.max_messages,
                lease_ms: ask.lease_ms,
            };
            let reply = group
                .propose(command, Vec::new())
                .await?
                .result
                .map_err(command_error)?;
            let Reply::Received { deliveries } = reply else {
                return Err(BrokerError::Internal(anyhow::anyhow!(
                    "receive got another reply"
                )));
            };
            if !deliveries.is_empty() {
                let mut deliveries = deliveries;
                let bodies = group.read_deliveries(&mut deliveries).await?;
                return Ok(deliveries
                    .into_iter()
                    .zip(bodies)
                    .map(|(delivery, body)| Delivered {
                        receipt: receipts.seal(&group.spec.group_id, delivery.receipt),
                        delivery,
                        body,
                    })
                    .collect());
            }
            // Ready messages none of which this consumer may take (message
            // groups, single active consumer): wait for the next change.
            changes.borrow_and_update();
        }
        if Instant::now() >= deadline {
            return Ok(Vec::new());
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() {
                return Err(BrokerError::Unavailable(format!(
                    "queue `{}` closed",
                    group.spec.queue
                )));
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

//! Redrive on request: up to `max_messages` ready messages leave a queue
//! (typically a dead-letter queue) for a target — a queue, an exchange
//! (with each message's routing key and headers), or the queue each came
//! from. They wait in the queue's outbox (`Command::Redrive` records the
//! target with them) until stored in their target, then are settled
//! (`Command::Settle`): a crash in between republishes them to the same
//! target when the queue reopens (at-least-once). One its target refuses
//! now stays in the outbox and goes to the dead-letter forwarder, which
//! retries it every second until its target takes it.

use sluice_queue::{Command, RedriveTarget, Reply};

use super::dead_letter::Republisher;
use super::{QueueGroup, command_error};
use crate::error::{BrokerError, BrokerResult};

/// Most messages one redrive moves.
pub const MAX_REDRIVE: u32 = 10_000;

/// What became of one redriven message.
pub struct Redriven {
    pub message_id: Option<String>,
    /// The queues that now hold it, or why its target did not take it yet.
    pub outcome: Result<Vec<String>, String>,
}

/// Moves up to `max_messages` ready messages of `source` to `target`.
pub async fn redrive(
    republisher: &Republisher,
    source: &QueueGroup,
    max_messages: u32,
    target: RedriveTarget,
) -> BrokerResult<Vec<Redriven>> {
    let command = Command::Redrive {
        max_messages,
        target,
    };
    let outcome = source.propose(command, Vec::new()).await?;
    let Reply::Redriven { mut messages } = outcome.result.map_err(command_error)? else {
        return Err(BrokerError::Internal(anyhow::anyhow!(
            "redrive got another reply"
        )));
    };
    for redriven in &mut messages {
        // Ids, routing keys and headers of plain messages are in the log; a
        // failed read shows here only as a missing id (the republish below
        // reads again, and fails, and the entry is retried).
        if let Err(err) = source.read_redriven(redriven).await {
            tracing::warn!(queue = %source.spec.queue, error = %err, "reading a redriven message failed");
        }
    }
    let mut settled = Vec::new();
    let mut retry = Vec::new();
    let mut results = Vec::new();
    for redriven in &messages {
        let message_id = redriven.message.meta.message_id.clone();
        let outcome = match republisher
            .redrive(source, redriven, &redriven.target)
            .await
        {
            Ok(queues) => {
                settled.push(redriven.outbox_id);
                Ok(queues)
            }
            Err(err) => {
                tracing::warn!(queue = %source.spec.queue, error = %err, "redriving a message failed; it stays in the outbox and is retried");
                retry.push(redriven.clone());
                Err(err.to_string())
            }
        };
        results.push(Redriven {
            message_id,
            outcome,
        });
    }
    source.retry_redriven(retry);
    if !settled.is_empty() {
        let command = Command::Settle {
            outbox_ids: settled,
        };
        if let Err(err) = source.propose(command, Vec::new()).await {
            // Stored in their targets already; unsettled entries are
            // republished (again) when the group reopens.
            tracing::warn!(queue = %source.spec.queue, error = %err, "settling redriven messages failed");
        }
    }
    Ok(results)
}

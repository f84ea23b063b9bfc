//! The dead-letter forwarder: one task republishes the dead letters queues
//! produce (nack to dead-letter, delivery limit, TTL, overflow) to their
//! dead-letter exchange, with x-death-like headers (`x-death-reason`,
//! `x-death-queue`, `x-death-count`), and then settles them in the source
//! queue's outbox. Until it is settled a dead letter's body stays pinned in
//! the source log, so a crash in between republishes it again
//! (at-least-once): a reopened group hands its unsettled outbox here.

use std::time::Duration;

use sluice_queue::{BodyRef, Command, DeadLetter, PublishMessage, Reply};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::TopologyHandle;
use crate::groups::Groups;
use crate::queue::QueueGroup;
use crate::queue::group::DeadLetterNote;
use crate::routers::Routers;

const RETRY: Duration = Duration::from_secs(1);

pub struct DeadLetterForwarder {
    pub groups: Groups,
    pub topology: TopologyHandle,
    pub routers: std::sync::Arc<Routers>,
}

impl DeadLetterForwarder {
    pub async fn run(
        self,
        mut notes: mpsc::UnboundedReceiver<DeadLetterNote>,
        retry: mpsc::UnboundedSender<DeadLetterNote>,
        shutdown: CancellationToken,
    ) {
        loop {
            let note = tokio::select! {
                note = notes.recv() => match note { Some(note) => note, None => return },
                _ = shutdown.cancelled() => return,
            };
            let Some(source) = self.groups.by_id(&note.group_id) else {
                // A group that just opened is listed once its convergence pass
                // ends; a deleted queue's dead letters go with it.
                let placed = self
                    .topology
                    .current()
                    .queues
                    .values()
                    .any(|q| q.placement.group_id == note.group_id);
                if placed {
                    later(&retry, note);
                }
                continue;
            };
            let mut settled = Vec::new();
            let mut failed = Vec::new();
            for dead_letter in note.dead_letters {
                match self.forward(&source, &dead_letter).await {
                    Ok(()) => settled.extend(dead_letter.outbox_id),
                    Err(err) => {
                        tracing::warn!(group = %note.group_id, error = %err, "dead-lettering failed; retrying");
                        failed.push(dead_letter);
                    }
                }
            }
            if !settled.is_empty()
                && let Err(err) = source
                    .propose(
                        Command::Settle {
                            outbox_ids: settled,
                        },
                        Vec::new(),
                    )
                    .await
            {
                tracing::warn!(group = %note.group_id, error = %err, "settling dead letters failed");
            }
            if !failed.is_empty() {
                later(
                    &retry,
                    DeadLetterNote {
                        group_id: note.group_id,
                        dead_letters: failed,
                    },
                );
            }
        }
    }

    /// Republishes one dead letter to every queue its target routes it to.
    async fn forward(&self, source: &QueueGroup, dead_letter: &DeadLetter) -> anyhow::Result<()> {
        let Some(target) = &dead_letter.target else {
            return Ok(());
        };
        let tenant_id = source.spec.tenant_id;
        let mut headers = dead_letter.meta.headers.clone();
        let reason = serde_json::to_value(dead_letter.reason)?;
        headers.insert(
            "x-death-reason".into(),
            reason.as_str().unwrap_or_default().to_string(),
        );
        headers.insert("x-death-queue".into(), source.spec.queue.clone());
        headers.insert("x-death-count".into(), dead_letter.count.to_string());
        let routing_headers = headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let topology = self.topology.current();
        let router = self.routers.for_tenant(&topology, tenant_id);
        let route = router.route(&target.exchange, &target.routing_key, &routing_headers)?;
        if route.unroutable {
            tracing::info!(queue = %source.spec.queue, exchange = %target.exchange, "dead letter unroutable; dropped");
            return Ok(());
        }
        let body = source
            .read_bodies(vec![dead_letter.body_ref])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("dead letter body missing"))?;
        for queue in &route.queues {
            let group = self
                .groups
                .queue(tenant_id, queue)
                .ok_or_else(|| anyhow::anyhow!("dead-letter queue `{queue}` is not hosted here"))?;
            let message = PublishMessage {
                message_id: dead_letter.meta.message_id.clone(),
                body_ref: BodyRef {
                    log_index: 0,
                    slot: 1,
                },
                size: dead_letter.meta.size,
                routing_key: target.routing_key.clone(),
                headers: headers.clone(),
                group: dead_letter.meta.group.clone(),
                delay_ms: None,
                expiration_ms: None,
                priority: dead_letter.meta.priority,
                // Death counts keep growing when a message loops back into its own queue.
                deaths: if **queue == *source.spec.queue {
                    dead_letter.meta.deaths.clone()
                } else {
                    Vec::new()
                },
            };
            let command = Command::Publish {
                messages: vec![message],
            };
            let outcome = group.propose(command, vec![body.clone()]).await?;
            match outcome.result {
                Ok(Reply::Published { .. }) => {}
                other => anyhow::bail!("publishing to `{queue}` answered {other:?}"),
            }
        }
        Ok(())
    }
}

/// Hands `note` back to the forwarder after a pause.
fn later(retry: &mpsc::UnboundedSender<DeadLetterNote>, note: DeadLetterNote) {
    let retry = retry.clone();
    tokio::spawn(async move {
        tokio::time::sleep(RETRY).await;
        let _ = retry.send(note);
    });
}

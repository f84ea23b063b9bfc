//! The dead-letter forwarder: one task republishes the dead letters queues
//! produce (nack to dead-letter, delivery limit, TTL, overflow) to their
//! dead-letter exchange, with x-death-like headers (`x-death-reason`,
//! `x-death-queue`, `x-death-count`), and then settles them in the source
//! queue's outbox. Until it is settled a dead letter's body stays pinned in
//! the source log, so a crash in between republishes it again
//! (at-least-once): a reopened group hands its unsettled outbox here.
//!
//! Redrive (`POST /v1/queues/{q}/redrive`) uses the same outbox: the API
//! republishes what `Command::Redrive` took out through [`Republisher`] and
//! settles it; redriven entries a crash left unsettled come back here when
//! the group reopens and go to their origin ([`RedriveTarget::Origin`]).

use std::sync::Arc;
use std::time::Duration;

use sluice_queue::{BodyRef, Command, DeadLetter, PublishMessage, PublishResult, Redriven, Reply};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::TopologyHandle;
use crate::groups::Groups;
use crate::queue::group::DeadLetterNote;
use crate::queue::{MessageBody, QueueGroup};
use crate::routers::Routers;

const RETRY: Duration = Duration::from_secs(1);

pub struct DeadLetterForwarder {
    pub groups: Groups,
    pub topology: TopologyHandle,
    pub routers: Arc<Routers>,
}

/// Where a redrive sends the messages it takes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveTarget {
    /// The queue each message was dead-lettered from (its `x-death-queue`
    /// header); a message without one goes back to the end of its queue.
    Origin,
    /// Through this exchange, with each message's routing key and headers.
    Exchange(String),
    /// Straight into this queue.
    Queue(String),
}

/// Republishes messages taken out of a queue (dead letters, redrives) into
/// other queues hosted here.
#[derive(Clone)]
pub struct Republisher {
    pub groups: Groups,
    pub topology: TopologyHandle,
    pub routers: Arc<Routers>,
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
            let mut failed_redrives = Vec::new();
            let republisher = self.republisher();
            for redriven in note.redriven {
                match republisher
                    .redrive(&source, &redriven, &RedriveTarget::Origin)
                    .await
                {
                    Ok(_) => settled.push(redriven.outbox_id),
                    Err(err) => {
                        tracing::warn!(group = %note.group_id, error = %err, "redrive failed; retrying");
                        failed_redrives.push(redriven);
                    }
                }
            }
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
            if !failed.is_empty() || !failed_redrives.is_empty() {
                later(
                    &retry,
                    DeadLetterNote {
                        group_id: note.group_id,
                        dead_letters: failed,
                        redriven: failed_redrives,
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
        let republisher = self.republisher();
        let Some(queues) =
            republisher.route(tenant_id, &target.exchange, &target.routing_key, &headers)?
        else {
            tracing::info!(queue = %source.spec.queue, exchange = %target.exchange, "dead letter unroutable; dropped");
            return Ok(());
        };
        let body = read_body(source, dead_letter.body_ref).await?;
        for queue in &queues {
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
                // A dead letter is not a new publish: the target's dedup window must not eat it.
                republished: true,
            };
            republisher
                .store(tenant_id, queue, message, body.clone())
                .await?;
        }
        Ok(())
    }

    fn republisher(&self) -> Republisher {
        Republisher {
            groups: self.groups.clone(),
            topology: self.topology.clone(),
            routers: self.routers.clone(),
        }
    }
}

impl Republisher {
    /// The queues `exchange` routes a message to; None when it is unroutable.
    pub fn route(
        &self,
        tenant_id: i64,
        exchange: &str,
        routing_key: &str,
        headers: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Option<Vec<Arc<str>>>> {
        let routing_headers = headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let topology = self.topology.current();
        let router = self.routers.for_tenant(&topology, tenant_id);
        let route = router.route(exchange, routing_key, &routing_headers)?;
        Ok((!route.unroutable).then_some(route.queues))
    }

    /// Stores `message` with `body` in the tenant's `queue` (hosted here).
    pub async fn store(
        &self,
        tenant_id: i64,
        queue: &str,
        message: PublishMessage,
        body: MessageBody,
    ) -> anyhow::Result<()> {
        let group = self
            .groups
            .queue(tenant_id, queue)
            .ok_or_else(|| anyhow::anyhow!("queue `{queue}` is not hosted here"))?;
        let command = Command::Publish {
            messages: vec![message],
        };
        let outcome = group.propose(command, vec![body]).await?;
        match outcome.result {
            Ok(Reply::Published { results }) => match results.first() {
                Some(PublishResult::Rejected { reason }) => {
                    anyhow::bail!("queue `{queue}` refused it: {reason:?}")
                }
                _ => Ok(()),
            },
            other => anyhow::bail!("publishing to `{queue}` answered {other:?}"),
        }
    }

    /// Republishes one redriven message to `target`; answers the queues
    /// that now hold it. The caller settles its outbox entry.
    pub async fn redrive(
        &self,
        source: &QueueGroup,
        redriven: &Redriven,
        target: &RedriveTarget,
    ) -> anyhow::Result<Vec<String>> {
        let tenant_id = source.spec.tenant_id;
        let meta = &redriven.message.meta;
        let queues: Vec<String> = match target {
            RedriveTarget::Queue(queue) => vec![queue.clone()],
            RedriveTarget::Exchange(exchange) => self
                .route(tenant_id, exchange, &meta.routing_key, &meta.headers)?
                .ok_or_else(|| anyhow::anyhow!("unroutable through exchange `{exchange}`"))?
                .iter()
                .map(|q| q.to_string())
                .collect(),
            RedriveTarget::Origin => {
                let origin = meta
                    .headers
                    .get("x-death-queue")
                    .filter(|q| self.groups.queue(tenant_id, q).is_some())
                    .cloned();
                vec![origin.unwrap_or_else(|| source.spec.queue.clone())]
            }
        };
        let body = read_body(source, redriven.message.body_ref).await?;
        for queue in &queues {
            let message = PublishMessage {
                message_id: meta.message_id.clone(),
                body_ref: BodyRef {
                    log_index: 0,
                    slot: 1,
                },
                size: meta.size,
                routing_key: meta.routing_key.clone(),
                headers: meta.headers.clone(),
                group: meta.group.clone(),
                delay_ms: None,
                expiration_ms: None,
                priority: meta.priority,
                deaths: Vec::new(),
                // A redriven message comes back on purpose: never a duplicate of itself.
                republished: true,
            };
            self.store(tenant_id, queue, message, body.clone()).await?;
        }
        Ok(queues)
    }
}

async fn read_body(source: &QueueGroup, body_ref: BodyRef) -> anyhow::Result<MessageBody> {
    source
        .read_bodies(vec![body_ref])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("message body missing"))
}

/// Hands `note` back to the forwarder after a pause.
fn later(retry: &mpsc::UnboundedSender<DeadLetterNote>, note: DeadLetterNote) {
    let retry = retry.clone();
    tokio::spawn(async move {
        tokio::time::sleep(RETRY).await;
        let _ = retry.send(note);
    });
}

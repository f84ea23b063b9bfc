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
//! the group reopens and go to the target the redrive asked for, which the
//! outbox keeps with each entry. A target deleted meanwhile (or an exchange
//! that now routes the message nowhere) sends it to its origin instead,
//! rather than pinning it in the outbox for good.

use std::sync::Arc;
use std::time::Duration;

use sluice_queue::{
    BodyRef, Command, DeadLetter, PublishMessage, PublishResult, RedriveTarget, Redriven, Reply,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::peers::Peers;
use crate::control::TopologyHandle;
use crate::queue::group::DeadLetterNote;
use crate::queue::host::QueueHost;
use crate::queue::routers::Routers;
use crate::queue::{MessageBody, QueueGroup};

const RETRY: Duration = Duration::from_secs(1);

pub struct DeadLetterForwarder {
    pub queues: QueueHost,
    pub topology: TopologyHandle,
    pub routers: Arc<Routers>,
    pub peers: Peers,
}

/// Republishes messages taken out of a queue (dead letters, redrives) into
/// other queues, here or on the brokers hosting them.
#[derive(Clone)]
pub struct Republisher {
    pub queues: QueueHost,
    pub topology: TopologyHandle,
    pub routers: Arc<Routers>,
    pub peers: Peers,
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
            let source = match self.queues.by_id(&note.group_id) {
                Some(hosted) => hosted.acquire().await.ok(),
                None => None,
            };
            let Some(source) = source else {
                // A group that just opened is listed once its convergence pass
                // ends, one that cannot be opened now is retried; a deleted
                // queue's dead letters go with it.
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
            for mut redriven in note.redriven {
                // The target may route by the routing key and headers, which
                // a plain message left in the log.
                if let Err(err) = source.read_redriven(&mut redriven).await {
                    tracing::warn!(group = %note.group_id, error = %err, "reading a redriven message failed; retrying");
                    failed_redrives.push(redriven);
                    continue;
                }
                let target = republisher.retry_target(&source, &redriven);
                match republisher.redrive(&source, &redriven, &target).await {
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
        if dead_letter.target.is_none() {
            return Ok(());
        }
        // Read first: the routing key and headers may still be in the log.
        let (body, dead_letter) = source.read_dead_letter(dead_letter).await?;
        let dead_letter = &dead_letter;
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
            // Counted (stats, metrics) and warned about: a dead-letter
            // exchange with no binding for the key must not lose quietly.
            // An alternate exchange on it is the last-resort destination.
            tracing::warn!(queue = %source.spec.queue, exchange = %target.exchange, routing_key = %target.routing_key, "dead letter routed nowhere by its dead-letter exchange; dropped");
            source.count_dropped_dead_letter();
            return Ok(());
        };
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
            queues: self.queues.clone(),
            topology: self.topology.clone(),
            routers: self.routers.clone(),
            peers: self.peers.clone(),
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

    /// The target an unsettled redrive goes to now: the one it was taken out
    /// for, unless that queue or exchange was deleted since or the exchange
    /// routes the message nowhere any more — retrying could not help then,
    /// and its origin is where such entries went before targets were kept.
    pub fn retry_target(&self, source: &QueueGroup, redriven: &Redriven) -> RedriveTarget {
        let tenant_id = source.spec.tenant_id;
        let meta = &redriven.message.meta;
        let deliverable = match &redriven.target {
            RedriveTarget::Origin => true,
            RedriveTarget::Queue { name } => self
                .topology
                .current()
                .queues
                .contains_key(&(tenant_id, name.clone())),
            RedriveTarget::Exchange { name } => matches!(
                self.route(tenant_id, name, &meta.routing_key, &meta.headers),
                Ok(Some(_))
            ),
        };
        if deliverable {
            redriven.target.clone()
        } else {
            tracing::warn!(
                queue = %source.spec.queue,
                outbox_id = redriven.outbox_id,
                target = ?redriven.target,
                "redrive target gone or unroutable; sending the message to its origin"
            );
            RedriveTarget::Origin
        }
    }

    /// Stores `message` with `body` in the tenant's `queue`, here or on the
    /// broker hosting it.
    pub async fn store(
        &self,
        tenant_id: i64,
        queue: &str,
        message: PublishMessage,
        body: MessageBody,
    ) -> anyhow::Result<()> {
        match self.queues.queue(tenant_id, queue) {
            Some(hosted) => {
                let group = hosted.acquire().await.map_err(anyhow::Error::new)?;
                store_local(&group, queue, message, body).await
            }
            None => {
                let payload = crate::queue::republish::republish_of(message, &body);
                self.peers.republish(tenant_id, queue, &payload).await
            }
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
        let mut redriven = redriven.clone();
        let body = source.read_redriven(&mut redriven).await?;
        let meta = &redriven.message.meta;
        let queues: Vec<String> = match target {
            RedriveTarget::Queue { name: queue } => vec![queue.clone()],
            RedriveTarget::Exchange { name: exchange } => self
                .route(tenant_id, exchange, &meta.routing_key, &meta.headers)?
                .ok_or_else(|| anyhow::anyhow!("unroutable through exchange `{exchange}`"))?
                .iter()
                .map(|q| q.to_string())
                .collect(),
            RedriveTarget::Origin => {
                let origin = meta
                    .headers
                    .get("x-death-queue")
                    .filter(|q| {
                        let topology = self.topology.current();
                        topology.queues.contains_key(&(tenant_id, q.to_string()))
                    })
                    .cloned();
                vec![origin.unwrap_or_else(|| source.spec.queue.clone())]
            }
        };
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

/// Stores `message` in `group`, the tenant's `queue` hosted here.
pub async fn store_local(
    group: &QueueGroup,
    queue: &str,
    message: PublishMessage,
    body: MessageBody,
) -> anyhow::Result<()> {
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

/// Hands `note` back to the forwarder after a pause.
fn later(retry: &mpsc::UnboundedSender<DeadLetterNote>, note: DeadLetterNote) {
    let retry = retry.clone();
    tokio::spawn(async move {
        tokio::time::sleep(RETRY).await;
        let _ = retry.send(note);
    });
}

#[cfg(test)]
mod tests {
    use crate::cluster::NodeKey;
    use crate::queue::group::GroupOutlets;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Instant;

    use sluice_queue::{ConsumerId, QueueSettings};

    use super::*;
    use crate::control::topology::{FeedQueue, Placement, Topology};
    use crate::queue::GroupSpec;

    const TENANT: i64 = 1;

    fn spec(group_id: &str, queue: &str) -> GroupSpec {
        GroupSpec {
            group_id: group_id.into(),
            tenant_id: TENANT,
            tenant: "acme".into(),
            queue: queue.into(),
            settings: QueueSettings::default(),
            replicas: vec!["n1".into()],
        }
    }

    async fn open(
        root: &Path,
        spec: GroupSpec,
        notes: &mpsc::UnboundedSender<DeadLetterNote>,
    ) -> Arc<QueueGroup> {
        QueueGroup::open(
            &root.join(&spec.group_id),
            "n1",
            spec,
            GroupOutlets::new(notes.clone()),
        )
        .await
        .expect("open group")
    }

    /// Publishes `text` as a dead letter of the queue `jobs`.
    async fn publish_dead_letter(group: &QueueGroup, text: &str) {
        let message = PublishMessage {
            message_id: Some(text.into()),
            body_ref: BodyRef {
                log_index: 0,
                slot: 1,
            },
            size: text.len() as u64,
            routing_key: String::new(),
            headers: BTreeMap::from([("x-death-queue".to_string(), "jobs".to_string())]),
            group: None,
            delay_ms: None,
            expiration_ms: None,
            priority: None,
            deaths: Vec::new(),
            republished: true,
        };
        let body = MessageBody {
            bytes: text.as_bytes().to_vec(),
            encoding: Default::default(),
            content_type: None,
        };
        let command = Command::Publish {
            messages: vec![message],
        };
        let outcome = group.propose(command, vec![body]).await.expect("publish");
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    }

    async fn redrive(group: &QueueGroup, target: RedriveTarget) {
        let command = Command::Redrive {
            max_messages: 1,
            target,
        };
        let outcome = group.propose(command, Vec::new()).await.expect("redrive");
        let Ok(Reply::Redriven { messages }) = outcome.result else {
            panic!("redrive answered {:?}", outcome.result);
        };
        assert_eq!(messages.len(), 1);
    }

    /// The bodies of every ready message of `group`.
    async fn drain(group: &QueueGroup) -> Vec<String> {
        let receive = Command::Receive {
            consumer: ConsumerId("test".into()),
            max_messages: 100,
            lease_ms: Some(60_000),
        };
        let outcome = group.propose(receive, Vec::new()).await.expect("receive");
        let Ok(Reply::Received { deliveries }) = outcome.result else {
            panic!("receive answered {:?}", outcome.result);
        };
        let refs = deliveries.iter().map(|d| d.body_ref).collect();
        let bodies = group.read_bodies(refs).await.expect("bodies");
        bodies
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned())
            .collect()
    }

    fn topology(queues: &[(&str, &str)]) -> Topology {
        let mut topology = Topology {
            version: 1,
            ..Topology::default()
        };
        for (group_id, name) in queues {
            let queue = FeedQueue {
                tenant_id: TENANT,
                name: name.to_string(),
                spec: QueueSettings::default(),
                placement: Placement {
                    group_id: group_id.to_string(),
                    replicas: vec!["n1".into()],
                },
            };
            topology
                .queues
                .insert((TENANT, name.to_string()), std::sync::Arc::new(queue));
        }
        topology
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unsettled_redrive_goes_to_its_stored_target_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (notes, mut received) = mpsc::unbounded_channel();
        let dlq = open(dir.path(), spec("q1", "jobs-dlq"), &notes).await;
        let jobs = open(dir.path(), spec("q2", "jobs"), &notes).await;
        let parked = open(dir.path(), spec("q3", "parked"), &notes).await;
        publish_dead_letter(&dlq, "to parked").await;
        publish_dead_letter(&dlq, "to a deleted queue").await;
        let to_parked = RedriveTarget::Queue {
            name: "parked".into(),
        };
        let to_deleted = RedriveTarget::Queue {
            name: "deleted".into(),
        };
        redrive(&dlq, to_parked.clone()).await;
        redrive(&dlq, to_deleted.clone()).await;
        // The broker stops before republishing or settling either.
        dlq.close().await;
        drop(dlq);

        let dlq = open(dir.path(), spec("q1", "jobs-dlq"), &notes).await;
        let note = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("the reopened group hands over its outbox")
            .expect("a note");
        let targets: Vec<&RedriveTarget> = note.redriven.iter().map(|r| &r.target).collect();
        assert_eq!(targets, vec![&to_parked, &to_deleted]);

        let topology = TopologyHandle::fixed(topology(&[
            ("q1", "jobs-dlq"),
            ("q2", "jobs"),
            ("q3", "parked"),
        ]));
        let forwarder = DeadLetterForwarder {
            queues: QueueHost::fixed(&[dlq.clone(), jobs.clone(), parked.clone()]),
            topology: topology.clone(),
            routers: Arc::default(),
            peers: Peers::new("n1".into(), NodeKey::new("node key"), topology),
        };
        let shutdown = CancellationToken::new();
        notes.send(note).expect("forwarder channel");
        let task = tokio::spawn(forwarder.run(received, notes.clone(), shutdown.clone()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while dlq.view().read(|q| q.stats().outbox) > 0 {
            assert!(Instant::now() < deadline, "the redrives were not settled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        task.await.expect("forwarder");

        assert_eq!(drain(&parked).await, vec!["to parked"]);
        assert_eq!(
            drain(&jobs).await,
            vec!["to a deleted queue"],
            "a target deleted meanwhile falls back to the origin"
        );
        for group in [dlq, jobs, parked] {
            group.close().await;
        }
    }
}

//! Publishing, whatever front end the messages came through: a batch to one
//! queue group as one Raft entry ([`to_group`]), or through an exchange
//! ([`through_exchange`]): the tenant's router picks the target queues, each
//! target gets its share as one entry — on this broker, or relayed to the
//! broker hosting it — and every message's outcome is gathered once every
//! target answered. Nothing is confirmed before its group committed it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use futures_util::future::join_all;
use serde::Deserialize;
use sluice_client::data::messages::{BodyEncoding as WireEncoding, OutgoingMessage, encode_bytes};
use sluice_client::data::queues::QueuePublishRequest;
use sluice_queue::{BodyRef, Command, PublishMessage, PublishResult, Reply};
use sluice_routing::{Headers, RouteError, Router};

use super::codec::{BodyEncoding, MessageBody};
use super::host::QueueHost;
use super::{QueueGroup, command_error};
use crate::cluster::relay::{Charged, relay_error};
use crate::cluster::{Peers, placement};
use crate::control::topology::Topology;
use crate::error::{BrokerError, BrokerResult};

/// A validated message: its metadata for the state machine and its body.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub meta: PublishMessage,
    pub body: MessageBody,
    /// Body plus metadata bytes: what the size, rate and storage quotas count.
    pub charged_bytes: u64,
}

/// The `Publish` command for `messages` and its bodies: message `i`'s body
/// is record `i + 1` of the entry.
pub fn publish_command<'a>(
    messages: impl IntoIterator<Item = &'a Prepared>,
) -> (Command, Vec<MessageBody>) {
    let mut metas = Vec::new();
    let mut bodies = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        let mut meta = message.meta.clone();
        meta.body_ref = BodyRef {
            log_index: 0,
            slot: i as u32 + 1,
        };
        metas.push(meta);
        bodies.push(message.body.clone());
    }
    (Command::Publish { messages: metas }, bodies)
}

/// Publishes `messages` to one group as one entry; one result per message.
pub async fn to_group(
    group: &QueueGroup,
    messages: &[&Prepared],
) -> BrokerResult<Vec<PublishResult>> {
    let (command, bodies) = publish_command(messages.iter().copied());
    let outcome = group.propose(command, bodies).await?;
    match outcome.result.map_err(command_error)? {
        Reply::Published { results } if results.len() == messages.len() => Ok(results),
        other => Err(BrokerError::Internal(anyhow::anyhow!(
            "publish got an unexpected reply: {other:?}"
        ))),
    }
}

/// One target queue's answer for one message, from a local group or from
/// the broker hosting the queue (which answers it in this shape).
#[derive(Debug, Clone, Deserialize)]
pub struct QueueAnswer {
    /// `stored`, `duplicate`, `rejected` or `dead_lettered`.
    pub status: String,
    /// Queues that hold the message (1 or 0).
    pub queues: u32,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One message's outcome in a queue, as publishers see it: its status
/// (`stored`, `duplicate`, `rejected`, `dead_lettered`), the queues that hold
/// it (1 or 0) and why it was rejected.
pub fn outcome_of(result: &PublishResult) -> (&'static str, u32, Option<String>) {
    match result {
        PublishResult::Stored { .. } => ("stored", 1, None),
        PublishResult::Duplicate { .. } => ("duplicate", 1, None),
        PublishResult::Rejected { reason } => (
            "rejected",
            0,
            serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string)),
        ),
        PublishResult::DeadLettered => ("dead_lettered", 0, None),
    }
}

impl From<&PublishResult> for QueueAnswer {
    fn from(result: &PublishResult) -> Self {
        let (status, queues, reason) = outcome_of(result);
        QueueAnswer {
            status: status.to_string(),
            queues,
            reason,
        }
    }
}

/// A target queue that did not take a message.
#[derive(Debug, Clone)]
pub struct FailedTarget {
    pub queue: String,
    /// `rejected`, `dead_lettered`, or what went wrong reaching the queue.
    pub error: String,
    pub reason: Option<String>,
}

/// Where one message published through an exchange went.
#[derive(Debug, Clone, Default)]
pub struct Routed {
    /// The exchange's bindings matched no queue.
    pub unroutable: bool,
    /// Queues that hold the message now.
    pub queues: Vec<String>,
    /// Those of `queues` that already held a message with its id (dedup).
    pub duplicate: Vec<String>,
    pub failed: Vec<FailedTarget>,
}

/// What an exchange publish reads from the node.
pub struct ExchangePublish<'a> {
    pub topology: &'a Topology,
    pub router: &'a Router,
    pub queues: &'a QueueHost,
    pub peers: &'a Peers,
    pub node_id: &'a str,
    pub tenant_id: i64,
    /// The caller's credential, for relaying to another broker.
    pub authorization: &'a str,
}

/// Routes every message through `exchange` and publishes each target
/// queue's share (already admitted and charged); one [`Routed`] per message.
pub async fn through_exchange(
    publish: &ExchangePublish<'_>,
    exchange: &str,
    prepared: &[Prepared],
) -> BrokerResult<Vec<Routed>> {
    let mut outcomes = Vec::with_capacity(prepared.len());
    let mut targets: BTreeMap<Arc<str>, Vec<usize>> = BTreeMap::new();
    for (i, message) in prepared.iter().enumerate() {
        let headers: Headers = message
            .meta
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let route = publish
            .router
            .route(exchange, &message.meta.routing_key, &headers)
            .map_err(|err| match err {
                RouteError::ExchangeNotFound(name) => BrokerError::NotFound {
                    kind: "exchange",
                    name,
                },
                RouteError::InternalExchange(_) => BrokerError::Forbidden(err.to_string()),
            })?;
        for queue in &route.queues {
            targets.entry(queue.clone()).or_default().push(i);
        }
        outcomes.push(Routed {
            unroutable: route.unroutable,
            ..Routed::default()
        });
    }
    let publishes = targets.iter().map(|(queue, indexes)| async move {
        let messages: Vec<&Prepared> = indexes.iter().map(|i| &prepared[*i]).collect();
        to_target(publish, queue, &messages).await
    });
    let results = join_all(publishes).await;
    for ((queue, indexes), result) in targets.iter().zip(results) {
        match result {
            Ok(answers) => {
                for (i, answer) in indexes.iter().zip(answers) {
                    let outcome = &mut outcomes[*i];
                    if answer.queues > 0 {
                        outcome.queues.push(queue.to_string());
                        if answer.status == "duplicate" {
                            outcome.duplicate.push(queue.to_string());
                        }
                    } else {
                        outcome.failed.push(FailedTarget {
                            queue: queue.to_string(),
                            error: answer.status,
                            reason: answer.reason,
                        });
                    }
                }
            }
            Err(err) => {
                for i in indexes {
                    outcomes[*i].failed.push(FailedTarget {
                        queue: queue.to_string(),
                        error: err.to_string(),
                        reason: None,
                    });
                }
            }
        }
    }
    Ok(outcomes)
}

/// One target queue's share: to its group here, or relayed to the broker
/// hosting it with the caller's credential (marked as charged already).
async fn to_target(
    publish: &ExchangePublish<'_>,
    queue: &str,
    messages: &[&Prepared],
) -> BrokerResult<Vec<QueueAnswer>> {
    let hosted_here = publish.queues.queue(publish.tenant_id, queue);
    let remote = placement::queue_host(publish.topology, publish.node_id, publish.tenant_id, queue);
    if let (None, Some(url)) = (&hosted_here, remote) {
        let who = format!("the broker hosting `{queue}`");
        let request = QueuePublishRequest {
            messages: messages.iter().map(|m| relayed(m)).collect(),
        };
        let answer = publish
            .peers
            .relay_client(&url, publish.authorization, Charged::Yes)?
            .publish_to_queue(queue, &request)
            .await
            .map_err(|err| relay_error(err, &who))?;
        return Ok(answer
            .results
            .into_iter()
            .map(|r| QueueAnswer {
                status: r.status,
                queues: r.queues,
                reason: r.reason,
            })
            .collect());
    }
    let group = publish
        .queues
        .serving(publish.topology, publish.tenant_id, queue)
        .await?;
    let results = to_group(&group, messages).await?;
    Ok(results.iter().map(QueueAnswer::from).collect())
}

/// One message as the broker hosting its queue takes it.
fn relayed(message: &Prepared) -> OutgoingMessage<'_> {
    let (body, encoding) = match message.body.encoding {
        // As the publisher sent it, when that is still possible.
        BodyEncoding::Utf8 => encode_bytes(&message.body.bytes),
        BodyEncoding::Base64 => (
            base64::engine::general_purpose::STANDARD
                .encode(&message.body.bytes)
                .into(),
            WireEncoding::Base64,
        ),
    };
    let meta = &message.meta;
    OutgoingMessage {
        body,
        body_encoding: encoding,
        message_id: meta.message_id.as_deref().map(Cow::Borrowed),
        headers: meta.headers.clone(),
        routing_key: Cow::Borrowed(&meta.routing_key),
        group: meta.group.as_deref().map(Cow::Borrowed),
        delay_ms: meta.delay_ms,
        expiration_ms: meta.expiration_ms,
        content_type: message.body.content_type.as_deref().map(Cow::Borrowed),
        priority: meta.priority,
    }
}

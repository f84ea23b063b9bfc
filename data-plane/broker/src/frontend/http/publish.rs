//! Publishing: straight to a queue (`POST /v1/queues/{q}/messages`) or
//! through an exchange (`POST /v1/exchanges/{x}/publish`). A publish answers
//! only once every target queue's group has committed it (fsync'd), with one
//! result per message.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use super::CallerAuth;
use super::json::JsonBody;
use super::lookup::queue_group;
use super::messages::{OutgoingMessage, PublishOutcome, prepare};
use super::problem::ProblemResponses;
use crate::error::BrokerResult;
use crate::node::Node;
use crate::queue::publish::{self, ExchangePublish, Prepared, Routed};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueuePublishRequest {
    messages: Vec<OutgoingMessage>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueuePublishResponse {
    results: Vec<PublishOutcome>,
}

/// Publish to one queue (through the default exchange). Answers after the
/// queue durably committed the batch, with one result per message.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages", tag = "publish",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = QueuePublishRequest,
    responses((status = 200, body = QueuePublishResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn publish_to_queue(
    State(state): State<Node>,
    headers: HeaderMap,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<QueuePublishRequest>,
) -> BrokerResult<Json<QueuePublishResponse>> {
    caller.require("publish")?;
    let group = queue_group(&state, &caller, &name).await?;
    let admission = state.admission();
    let mut prepared = prepare(request.messages, admission.max_message_bytes(&caller))?;
    // As RabbitMQ's default exchange does: a message published straight to
    // a queue carries the queue's name as its routing key, which a
    // dead-letter exchange without `dead_letter_routing_key` routes by.
    for message in &mut prepared {
        if message.meta.routing_key.is_empty() {
            message.meta.routing_key.clone_from(&name);
        }
    }
    if !state.node_key.already_charged(&headers) {
        admission.charge(
            &caller,
            "messages",
            prepared.len() as u64,
            charged_bytes(&prepared),
        )?;
    }
    let refs: Vec<&Prepared> = prepared.iter().collect();
    let results = publish::to_group(&group, &refs).await?;
    Ok(Json(QueuePublishResponse {
        results: results.iter().map(PublishOutcome::from).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangePublishRequest {
    messages: Vec<OutgoingMessage>,
    #[serde(default)]
    mandatory: bool,
}

/// A target queue that did not take the message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FailedQueue {
    queue: String,
    /// `rejected` (the queue is full and its overflow policy is
    /// `reject-publish`), `dead_lettered` (full, policy `dead-letter`:
    /// the message went to the queue's dead-letter exchange instead), or
    /// what went wrong reaching the queue.
    error: String,
    /// Why, for `rejected`: `max-length` or `max-length-bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Where one message went.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoutedOutcome {
    /// `routed` (every target queue holds it), `unroutable`, or `failed`
    /// (some target queue did not take it: see `failed`).
    status: &'static str,
    /// Queues that hold the message now.
    routed: u32,
    unroutable: bool,
    /// `mandatory` was set and no queue took the message.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    returned: bool,
    queues: Vec<String>,
    /// Those of `queues` that already held a message with this message id
    /// within their dedup window: they kept the first copy, nothing was
    /// stored twice.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    duplicate: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<FailedQueue>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExchangePublishResponse {
    results: Vec<RoutedOutcome>,
}

/// Publish through an exchange: each message is routed by the exchange's
/// type and bindings and answered once every target queue committed it.
#[utoipa::path(post, path = "/v1/exchanges/{exchange}/publish", tag = "publish",
    params(("exchange" = String, Path, description = "Exchange name (`default` routes by queue name)")),
    request_body = ExchangePublishRequest,
    responses((status = 200, body = ExchangePublishResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn publish_to_exchange(
    State(state): State<Node>,
    headers: HeaderMap,
    CallerAuth(caller): CallerAuth,
    Path(exchange): Path<String>,
    JsonBody(request): JsonBody<ExchangePublishRequest>,
) -> BrokerResult<Json<ExchangePublishResponse>> {
    caller.require("publish")?;
    let admission = state.admission();
    let prepared = prepare(request.messages, admission.max_message_bytes(&caller))?;
    admission.charge(
        &caller,
        "messages",
        prepared.len() as u64,
        charged_bytes(&prepared),
    )?;
    let topology = state.topology.current();
    let router = state.routers.for_tenant(&topology, caller.tenant_id);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let routed = publish::through_exchange(
        &ExchangePublish {
            topology: &topology,
            router: &router,
            queues: &state.queues,
            peers: &state.peers,
            node_id: &state.node_id,
            tenant_id: caller.tenant_id,
            authorization,
        },
        &exchange,
        &prepared,
    )
    .await?;
    let outcomes = routed
        .into_iter()
        .map(|routed| RoutedOutcome::new(routed, request.mandatory))
        .collect();
    Ok(Json(ExchangePublishResponse { results: outcomes }))
}

/// What the rate and storage quotas count of a batch.
fn charged_bytes(prepared: &[Prepared]) -> u64 {
    prepared.iter().map(|p| p.charged_bytes).sum()
}

impl RoutedOutcome {
    fn new(routed: Routed, mandatory: bool) -> RoutedOutcome {
        let status = if !routed.failed.is_empty() {
            "failed"
        } else if routed.unroutable {
            "unroutable"
        } else {
            "routed"
        };
        RoutedOutcome {
            status,
            routed: routed.queues.len() as u32,
            unroutable: routed.unroutable,
            returned: routed.unroutable && mandatory,
            queues: routed.queues,
            duplicate: routed.duplicate,
            failed: routed
                .failed
                .into_iter()
                .map(|f| FailedQueue {
                    queue: f.queue,
                    error: f.error,
                    reason: f.reason,
                })
                .collect(),
        }
    }
}

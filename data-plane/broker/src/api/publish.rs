//! Publishing: straight to a queue (`POST /v1/queues/{q}/messages`) or
//! through an exchange (`POST /v1/exchanges/{x}/publish`). A publish answers
//! only once every target queue's group has committed it (fsync'd), with one
//! result per message.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use sluice_queue::{PublishResult, Reply};
use sluice_routing::{Headers, RouteError};

use super::forward;
use super::json::JsonBody;
use super::messages::{
    OutgoingMessage, Prepared, PublishOutcome, QueueAnswer, prepare, publish_command,
};
use super::openapi::ProblemResponses;
use super::queues::queue_group;
use super::{BrokerState, CallerAuth};
use crate::auth::Caller;
use crate::error::{BrokerError, BrokerResult, command_error};
use crate::limits::{RateQuota, Refusal};
use crate::queue::QueueGroup;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueuePublishRequest {
    messages: Vec<OutgoingMessage>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueuePublishResponse {
    results: Vec<PublishOutcome>,
}

pub(crate) fn max_message_bytes(state: &BrokerState, caller: &Caller) -> i64 {
    state
        .topology
        .current()
        .tenants
        .get(&caller.tenant_id)
        .map_or(0, |t| t.quotas.max_message_bytes)
}

/// Charges the batch to the tenant's publish rate quotas (messages/s and
/// bytes/s), before anything is written: a refused batch leaves no trace.
fn charge_rate(state: &BrokerState, caller: &Caller, prepared: &[Prepared]) -> BrokerResult<()> {
    let bytes: u64 = prepared.iter().map(|p| p.charged_bytes).sum();
    charge(state, caller, "messages", prepared.len() as u64, bytes)
}

/// Admits `count` messages (or records) of `bytes`: refused when the
/// tenant's storage is full (`storage_quota`), else charged to its publish
/// rate quotas; `field` is what a batch too big for one second is blamed on.
pub(crate) fn charge(
    state: &BrokerState,
    caller: &Caller,
    field: &'static str,
    count: u64,
    bytes: u64,
) -> BrokerResult<()> {
    let topology = state.topology.current();
    let Some(tenant) = topology.tenants.get(&caller.tenant_id) else {
        return Err(BrokerError::Unauthorized("unknown tenant".into()));
    };
    crate::storage_quota::check(&state.topology, caller, bytes)?;
    let quotas = &tenant.quotas;
    let quota = RateQuota {
        messages_per_second: quotas.publish_messages_per_second,
        bytes_per_second: quotas.publish_bytes_per_second,
    };
    // The quota is the tenant's across the cluster: this broker admits its share.
    let brokers = state.topology.live_brokers();
    match state
        .limits
        .admit(caller.tenant_id, quota, brokers, count, bytes)
    {
        Ok(()) => Ok(()),
        Err(Refusal::Later { retry_after }) => {
            crate::metrics::rate_limited(&caller.tenant);
            Err(BrokerError::RateLimited {
                detail: format!(
                    "tenant `{}` is over its publish rate ({} messages/s, {} bytes/s, shared by {brokers} live broker(s)); nothing was stored",
                    caller.tenant,
                    quotas.publish_messages_per_second,
                    quotas.publish_bytes_per_second
                ),
                retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            })
        }
        Err(Refusal::TooLarge {
            what,
            needed,
            per_second,
        }) => Err(BrokerError::validation(
            field,
            "rate-quota",
            format!(
                "this batch has {needed} {what}, more than the tenant's {per_second} per second; split it"
            ),
        )),
    }
}

/// Publishes `messages` to one group as one entry; one result per message.
async fn publish_to(
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

/// Publish to one queue (through the default exchange). Answers after the
/// queue durably committed the batch, with one result per message.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages", tag = "publish",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = QueuePublishRequest,
    responses((status = 200, body = QueuePublishResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn publish_to_queue(
    State(state): State<BrokerState>,
    headers: HeaderMap,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<QueuePublishRequest>,
) -> BrokerResult<Json<QueuePublishResponse>> {
    caller.require("publish")?;
    let group = queue_group(&state, &caller, &name)?;
    let prepared = prepare(request.messages, max_message_bytes(&state, &caller))?;
    if !forward::already_charged(&state, &headers) {
        charge_rate(&state, &caller, &prepared)?;
    }
    let refs: Vec<&Prepared> = prepared.iter().collect();
    let results = publish_to(&group, &refs).await?;
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
    State(state): State<BrokerState>,
    headers: HeaderMap,
    CallerAuth(caller): CallerAuth,
    Path(exchange): Path<String>,
    JsonBody(request): JsonBody<ExchangePublishRequest>,
) -> BrokerResult<Json<ExchangePublishResponse>> {
    caller.require("publish")?;
    let topology = state.topology.current();
    let router = state.routers.for_tenant(&topology, caller.tenant_id);
    let prepared = prepare(request.messages, max_message_bytes(&state, &caller))?;
    charge_rate(&state, &caller, &prepared)?;

    let mut outcomes = Vec::with_capacity(prepared.len());
    let mut targets: BTreeMap<Arc<str>, Vec<usize>> = BTreeMap::new();
    for (i, message) in prepared.iter().enumerate() {
        let headers: Headers = message
            .meta
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let route = router
            .route(&exchange, &message.meta.routing_key, &headers)
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
        outcomes.push(RoutedOutcome {
            status: if route.unroutable {
                "unroutable"
            } else {
                "routed"
            },
            routed: 0,
            unroutable: route.unroutable,
            returned: route.unroutable && request.mandatory,
            queues: Vec::new(),
            duplicate: Vec::new(),
            failed: Vec::new(),
        });
    }

    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let publishes = targets.iter().map(|(queue, indexes)| {
        let prepared = &prepared;
        let state = &state;
        let caller = &caller;
        async move {
            let messages: Vec<&Prepared> = indexes.iter().map(|i| &prepared[*i]).collect();
            if let Some(url) = forward::remote_url(state, caller.tenant_id, queue) {
                return forward::publish_remote(state, &url, queue, authorization, &messages).await;
            }
            let group = queue_group(state, caller, queue)?;
            let results = publish_to(&group, &messages).await?;
            Ok(results.iter().map(QueueAnswer::from).collect())
        }
    });
    let results = join_all(publishes).await;
    for ((queue, indexes), result) in targets.iter().zip(results) {
        match result {
            Ok(results) => {
                for (i, answer) in indexes.iter().zip(results) {
                    let outcome = &mut outcomes[*i];
                    if answer.queues > 0 {
                        outcome.routed += 1;
                        outcome.queues.push(queue.to_string());
                        if answer.status == "duplicate" {
                            outcome.duplicate.push(queue.to_string());
                        }
                    } else {
                        outcome.failed.push(FailedQueue {
                            queue: queue.to_string(),
                            error: answer.status,
                            reason: answer.reason,
                        });
                    }
                }
            }
            Err(err) => {
                for i in indexes {
                    outcomes[*i].failed.push(FailedQueue {
                        queue: queue.to_string(),
                        error: err.to_string(),
                        reason: None,
                    });
                }
            }
        }
    }
    for outcome in &mut outcomes {
        if !outcome.failed.is_empty() {
            outcome.status = "failed";
        }
    }
    Ok(Json(ExchangePublishResponse { results: outcomes }))
}

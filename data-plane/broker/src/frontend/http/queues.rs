//! Consuming from a queue: receive (long-poll with a lease), ack, nack,
//! extend a lease, peek, purge and stats. Every handler needs the `consume`
//! scope and answers 404 for a queue the caller's tenant does not have.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use sluice_queue::{Command, ConsumerId, NackAction, NackOutcome, Receipt, Reply};

use super::CallerAuth;
use super::json::JsonBody;
use super::lookup::{hosted_queue, queue_group};
use super::messages::{PeekedMessage, ReceivedMessage};
use super::problem::ProblemResponses;
use super::query::QueryParams;
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;
use crate::queue::QueueGroup;
use crate::queue::command_error;
use crate::queue::{MAX_LEASE_MS, pull};

const MAX_RECEIVE: u32 = 100;
const MAX_WAIT_MS: u64 = 20_000;
const MAX_RECEIPTS: usize = 1000;

fn reply(outcome: crate::queue::CommandOutcome) -> BrokerResult<Reply> {
    outcome.result.map_err(command_error)
}

/// The receipt a client sent back, if this queue issued it.
fn parse_receipt(
    state: &Node,
    group: &QueueGroup,
    field: &str,
    receipt: &str,
) -> BrokerResult<Receipt> {
    state.receipts.open(&group.spec.group_id, field, receipt)
}

fn check_lease(lease_ms: Option<u64>) -> BrokerResult<()> {
    match lease_ms {
        Some(ms) if ms == 0 || ms > MAX_LEASE_MS => Err(BrokerError::validation(
            "lease_ms",
            "range",
            format!("must be between 1 and {MAX_LEASE_MS}"),
        )),
        _ => Ok(()),
    }
}

fn one() -> u32 {
    1
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    #[serde(default = "one")]
    max_messages: u32,
    #[serde(default)]
    wait_ms: u64,
    #[serde(default)]
    lease_ms: Option<u64>,
    /// Consumer id (default: the key id). Receives with the same id are one
    /// consumer: on a single-active-consumer queue, one place in line.
    #[serde(default)]
    consumer: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReceiveResponse {
    messages: Vec<ReceivedMessage>,
}

/// Lease up to `max_messages` ready messages (long-poll up to `wait_ms`
/// when none is ready). Each comes with a receipt for ack / nack / extend.
/// On a single-active-consumer queue only the active consumer receives
/// (the others get 409 `not-active-consumer` and wait their turn); a pull
/// consumer stays the active one while it holds unacked messages or keeps
/// receiving (a long-poll on an empty queue counts) within the queue's
/// lease, then the next one takes over. A consumer's first receive puts it
/// in line, so a waiting consumer learns it is not active (409) even when
/// nothing is ready.
#[utoipa::path(post, path = "/v1/queues/{queue}/receive", tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = ReceiveRequest,
    responses((status = 200, body = ReceiveResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn receive(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<ReceiveRequest>,
) -> BrokerResult<Json<ReceiveResponse>> {
    caller.require("consume")?;
    let group = queue_group(&state, &caller, &name).await?;
    if !(1..=MAX_RECEIVE).contains(&request.max_messages) {
        return Err(BrokerError::validation(
            "max_messages",
            "range",
            format!("must be between 1 and {MAX_RECEIVE}"),
        ));
    }
    if request.wait_ms > MAX_WAIT_MS {
        return Err(BrokerError::validation(
            "wait_ms",
            "range",
            format!("must be at most {MAX_WAIT_MS}"),
        ));
    }
    check_lease(request.lease_ms)?;
    let consumer = ConsumerId(request.consumer.unwrap_or_else(|| caller.key_id.clone()));
    if consumer.0.is_empty() || consumer.0.len() > 200 {
        return Err(BrokerError::validation(
            "consumer",
            "length",
            "between 1 and 200 characters",
        ));
    }
    // A receive that may wait holds a connection while it does: counted
    // against the tenant's cap on open long-polls.
    let _waiting = if request.wait_ms > 0 {
        Some(state.waiters.enter(caller.tenant_id)?)
    } else {
        None
    };
    let ask = pull::Receive {
        consumer,
        max_messages: request.max_messages,
        lease_ms: request.lease_ms,
        wait: Duration::from_millis(request.wait_ms),
    };
    let messages = pull::receive(&group, &state.receipts, ask)
        .await?
        .into_iter()
        .map(|m| ReceivedMessage::new(m.receipt, m.delivery, &m.body))
        .collect();
    Ok(Json(ReceiveResponse { messages }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    receipts: Vec<String>,
}

/// The outcome of one receipt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AckResult {
    receipt: String,
    /// `ok` or `error`.
    status: &'static str,
    /// `stale` (the lease ended), `unknown` (no such delivery) or `refused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AckResponse {
    results: Vec<AckResult>,
}

/// Acknowledge deliveries: the messages are done and leave the queue.
#[utoipa::path(post, path = "/v1/queues/{queue}/ack", tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = AckRequest,
    responses((status = 200, body = AckResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn ack(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<AckRequest>,
) -> BrokerResult<Json<AckResponse>> {
    caller.require("consume")?;
    let group = queue_group(&state, &caller, &name).await?;
    if request.receipts.is_empty() || request.receipts.len() > MAX_RECEIPTS {
        return Err(BrokerError::validation(
            "receipts",
            "size",
            format!("between 1 and {MAX_RECEIPTS} receipts"),
        ));
    }
    let receipts = request
        .receipts
        .iter()
        .enumerate()
        .map(|(i, r)| parse_receipt(&state, &group, &format!("receipts[{i}]"), r))
        .collect::<BrokerResult<Vec<Receipt>>>()?;
    let Reply::Acked { results, .. } = reply(state.dispatchers.ack(&group, receipts).await?)?
    else {
        return Err(BrokerError::Internal(anyhow::anyhow!(
            "ack got another reply"
        )));
    };
    let results = request
        .receipts
        .into_iter()
        .zip(results)
        .map(|(receipt, result)| match result {
            Ok(_) => AckResult {
                receipt,
                status: "ok",
                error: None,
                detail: None,
            },
            Err(err) => AckResult {
                receipt,
                status: "error",
                error: Some(match err {
                    sluice_queue::QueueError::StaleReceipt(_) => "stale",
                    sluice_queue::QueueError::UnknownReceipt(_) => "unknown",
                    _ => "refused",
                }),
                detail: Some(err.to_string()),
            },
        })
        .collect();
    Ok(Json(AckResponse { results }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NackKind {
    Requeue,
    RequeueNow,
    RequeueAfter,
    DeadLetter,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    receipt: String,
    #[serde(default = "requeue")]
    action: NackKind,
    #[serde(default)]
    delay_ms: Option<u64>,
}

fn requeue() -> NackKind {
    NackKind::Requeue
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NackResponse {
    receipt: String,
    /// `requeued`, `delayed` (see `due_ms`) or `dead_lettered`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_ms: Option<u64>,
}

/// Give a delivery back: requeue now, after the retry backoff or a delay,
/// or dead-letter it.
#[utoipa::path(post, path = "/v1/queues/{queue}/nack", tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = NackRequest,
    responses((status = 200, body = NackResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn nack(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<NackRequest>,
) -> BrokerResult<Json<NackResponse>> {
    caller.require("consume")?;
    let group = queue_group(&state, &caller, &name).await?;
    let receipt = parse_receipt(&state, &group, "receipt", &request.receipt)?;
    let action = match (request.action, request.delay_ms) {
        (NackKind::RequeueAfter, Some(delay_ms))
            if delay_ms > super::message_limits::MAX_TIME_MS =>
        {
            return Err(BrokerError::validation(
                "delay_ms",
                "range",
                format!("must be at most {} ms", super::message_limits::MAX_TIME_MS),
            ));
        }
        (NackKind::RequeueAfter, Some(delay_ms)) => NackAction::RequeueAfter { delay_ms },
        (NackKind::RequeueAfter, None) => {
            return Err(BrokerError::validation(
                "delay_ms",
                "required",
                "requeue_after needs delay_ms",
            ));
        }
        (_, Some(_)) => {
            return Err(BrokerError::validation(
                "delay_ms",
                "unexpected",
                "delay_ms goes with the requeue_after action only",
            ));
        }
        (NackKind::Requeue, None) => NackAction::Requeue,
        (NackKind::RequeueNow, None) => NackAction::RequeueNow,
        (NackKind::DeadLetter, None) => NackAction::DeadLetter,
    };
    let Reply::Nacked { outcome } = reply(
        group
            .propose(Command::Nack { receipt, action }, Vec::new())
            .await?,
    )?
    else {
        return Err(BrokerError::Internal(anyhow::anyhow!(
            "nack got another reply"
        )));
    };
    let (outcome, due_ms) = match outcome {
        NackOutcome::Requeued => ("requeued", None),
        NackOutcome::Delayed { due_ms } => ("delayed", Some(due_ms)),
        NackOutcome::DeadLettered => ("dead_lettered", None),
    };
    Ok(Json(NackResponse {
        receipt: request.receipt,
        outcome,
        due_ms,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    receipt: String,
    lease_ms: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExtendResponse {
    receipt: String,
    lease_deadline_ms: u64,
}

/// Set a delivery's lease to end `lease_ms` from now (0 returns it at once).
#[utoipa::path(post, path = "/v1/queues/{queue}/extend", tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = ExtendRequest,
    responses((status = 200, body = ExtendResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn extend(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<ExtendRequest>,
) -> BrokerResult<Json<ExtendResponse>> {
    caller.require("consume")?;
    let group = queue_group(&state, &caller, &name).await?;
    let receipt = parse_receipt(&state, &group, "receipt", &request.receipt)?;
    if request.lease_ms > MAX_LEASE_MS {
        return Err(BrokerError::validation(
            "lease_ms",
            "range",
            format!("must be at most {MAX_LEASE_MS}"),
        ));
    }
    let command = Command::ExtendLease {
        receipt,
        lease_ms: request.lease_ms,
    };
    let Reply::LeaseExtended { lease_deadline_ms } =
        reply(group.propose(command, Vec::new()).await?)?
    else {
        return Err(BrokerError::Internal(anyhow::anyhow!(
            "extend got another reply"
        )));
    };
    Ok(Json(ExtendResponse {
        receipt: request.receipt,
        lease_deadline_ms,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeekParams {
    /// How many ready messages to show, 1 to 100 (default 10).
    max: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PeekResponse {
    messages: Vec<PeekedMessage>,
}

/// Browse the first ready messages without leasing them.
#[utoipa::path(get, path = "/v1/queues/{queue}/peek", tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), PeekParams),
    responses((status = 200, body = PeekResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn peek(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    QueryParams(params): QueryParams<PeekParams>,
) -> BrokerResult<Json<PeekResponse>> {
    caller.require("consume")?;
    let group = queue_group(&state, &caller, &name).await?;
    let max = params.max.unwrap_or(10);
    if !(1..=MAX_RECEIVE as usize).contains(&max) {
        return Err(BrokerError::validation(
            "max",
            "range",
            format!("must be between 1 and {MAX_RECEIVE}"),
        ));
    }
    let mut views = group.view().read(|q| q.peek(max));
    let bodies = group.read_views(&mut views).await?;
    let messages: Vec<PeekedMessage> = views
        .into_iter()
        .zip(bodies.iter())
        .map(|(view, body)| PeekedMessage::new(view, body))
        .collect();
    Ok(Json(PeekResponse { messages }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PurgeResponse {
    /// Ready messages removed (leased and delayed ones stay).
    purged: u64,
}

/// Remove every ready message.
#[utoipa::path(post, path = "/v1/queues/{queue}/purge", tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    responses((status = 200, body = PurgeResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn purge(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
) -> BrokerResult<Json<PurgeResponse>> {
    caller.require("consume")?;
    let group = queue_group(&state, &caller, &name).await?;
    let Reply::Purged { count } = reply(group.propose(Command::Purge, Vec::new()).await?)? else {
        return Err(BrokerError::Internal(anyhow::anyhow!(
            "purge got another reply"
        )));
    };
    Ok(Json(PurgeResponse { purged: count }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueStatsResponse {
    queue: String,
    ready: u64,
    unacked: u64,
    delayed: u64,
    ready_bytes: u64,
    /// Dead letters and redrives waiting to be republished.
    outbox: u64,
    /// Unacked messages per consumer (attached consumers holding none
    /// included).
    consumers: BTreeMap<String, u64>,
    /// Messages per second over the last 10 s, as this broker counted them.
    rates: crate::queue::Rates,
    /// Dead letters this queue's dead-letter exchange routed nowhere (no
    /// binding matched the routing key and no alternate exchange took
    /// them), since this broker started hosting the queue. Give the
    /// dead-letter exchange a binding or an alternate exchange.
    dead_letters_dropped: u64,
    /// Single-active-consumer queues: the consumer that receives now.
    #[serde(skip_serializing_if = "Option::is_none")]
    active_consumer: Option<String>,
}

/// The queue's live counts and rates.
#[utoipa::path(get, path = "/v1/queues/{queue}/stats", tag = "consume",
    params(("queue" = String, Path, description = "Queue name")),
    responses((status = 200, body = QueueStatsResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn stats(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
) -> BrokerResult<Json<QueueStatsResponse>> {
    caller.require("consume")?;
    // A sleeping queue answers from its summary, without waking.
    let hosted = hosted_queue(&state, &caller, &name)?;
    let stats = hosted.stats().ok_or_else(|| BrokerError::NotFound {
        kind: "queue",
        name: name.clone(),
    })?;
    Ok(Json(QueueStatsResponse {
        queue: name,
        ready: stats.ready,
        unacked: stats.unacked,
        delayed: stats.delayed,
        ready_bytes: stats.ready_bytes,
        outbox: stats.outbox,
        consumers: stats.consumers.into_iter().map(|(c, n)| (c.0, n)).collect(),
        rates: hosted.rates(),
        dead_letters_dropped: hosted.totals().dead_letters_dropped,
        active_consumer: stats.active_consumer.map(|c| c.0),
    }))
}

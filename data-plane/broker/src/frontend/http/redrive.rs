//! Redrive: `POST /v1/queues/{q}/redrive` moves up to `max_messages` ready
//! messages out of a queue (typically a dead-letter queue) and republishes
//! them: to `to_queue`, through `to_exchange` (with each message's routing
//! key and headers), or by default back to the queue each came from (its
//! `x-death-queue` header; a message without one goes to the back of this
//! queue). Needs the `manage` or the `consume` scope.
//!
//! The messages wait in the queue's outbox (`Command::Redrive`, which
//! records the target with them) until they are stored in their target, then
//! are settled (`Command::Settle`): a crash in between republishes them to
//! the same target when the queue reopens (at-least-once; to their origin if
//! that target was deleted meanwhile). One that fails now (its target
//! refused it) stays in the outbox and goes to the dead-letter forwarder,
//! which retries it every second until its target takes it.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use sluice_queue::{Command, RedriveTarget, Reply};
use sluice_routing::RouteError;

use super::CallerAuth;
use super::json::JsonBody;
use super::lookup::queue_group;
use super::openapi::ProblemResponses;
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;
use crate::queue::command_error;
use crate::queue::dead_letter::Republisher;

/// Most messages one redrive moves.
pub const MAX_REDRIVE: u32 = 10_000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    max_messages: u32,
    #[serde(default)]
    to_exchange: Option<String>,
    #[serde(default)]
    to_queue: Option<String>,
}

/// One redriven message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RedrivenMessage {
    message_id: Option<String>,
    /// `redriven` or `failed` (it stays in the outbox and is retried).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    queues: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RedriveResponse {
    redriven: usize,
    failed: usize,
    messages: Vec<RedrivenMessage>,
}

/// Move ready messages out of a (dead-letter) queue: to `to_queue`, through
/// `to_exchange`, or back to the queue each came from.
#[utoipa::path(post, path = "/v1/queues/{queue}/redrive", tag = "consume",
    params(("queue" = String, Path, description = "Queue to take messages from")),
    request_body = RedriveRequest,
    responses((status = 200, body = RedriveResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn redrive(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<RedriveRequest>,
) -> BrokerResult<Json<RedriveResponse>> {
    if caller.require("manage").is_err() {
        caller.require("consume").map_err(|_| {
            BrokerError::Forbidden(
                "redrive needs a key with the `manage` or `consume` scope".into(),
            )
        })?;
    }
    let source = queue_group(&state, &caller, &name)?;
    if !(1..=MAX_REDRIVE).contains(&request.max_messages) {
        return Err(BrokerError::validation(
            "max_messages",
            "range",
            format!("must be between 1 and {MAX_REDRIVE}"),
        ));
    }
    let republisher = Republisher {
        groups: state.queues.clone(),
        topology: state.topology.clone(),
        routers: state.routers.clone(),
        peers: state.peers.clone(),
    };
    let target = match (request.to_exchange, request.to_queue) {
        (Some(_), Some(_)) => {
            return Err(BrokerError::validation(
                "to_queue",
                "exclusive",
                "give to_exchange or to_queue, not both",
            ));
        }
        (Some(exchange), None) => {
            let empty = Default::default();
            if let Err(err) = republisher.route(caller.tenant_id, &exchange, "", &empty)
                && matches!(
                    err.downcast_ref::<RouteError>(),
                    Some(RouteError::ExchangeNotFound(_))
                )
            {
                return Err(BrokerError::NotFound {
                    kind: "exchange",
                    name: exchange,
                });
            }
            RedriveTarget::Exchange { name: exchange }
        }
        (None, Some(queue)) => {
            // Checked like any queue the caller names: 404 if not theirs.
            queue_group(&state, &caller, &queue).map_err(|err| match err {
                BrokerError::NotFound { name, .. } => BrokerError::validation(
                    "to_queue",
                    "exists",
                    format!("queue `{name}` not found"),
                ),
                other => other,
            })?;
            RedriveTarget::Queue { name: queue }
        }
        (None, None) => RedriveTarget::Origin,
    };
    let command = Command::Redrive {
        max_messages: request.max_messages,
        target,
    };
    let outcome = source.propose(command, Vec::new()).await?;
    let Reply::Redriven { messages } = outcome.result.map_err(command_error)? else {
        return Err(BrokerError::Internal(anyhow::anyhow!(
            "redrive got another reply"
        )));
    };
    let mut settled = Vec::new();
    let mut retry = Vec::new();
    let mut results = Vec::new();
    for redriven in &messages {
        let message_id = redriven.message.meta.message_id.clone();
        match republisher
            .redrive(&source, redriven, &redriven.target)
            .await
        {
            Ok(queues) => {
                settled.push(redriven.outbox_id);
                results.push(RedrivenMessage {
                    message_id,
                    status: "redriven",
                    queues: Some(queues),
                    detail: None,
                });
            }
            Err(err) => {
                tracing::warn!(queue = %name, error = %err, "redriving a message failed; it stays in the outbox and is retried");
                retry.push(redriven.clone());
                results.push(RedrivenMessage {
                    message_id,
                    status: "failed",
                    queues: None,
                    detail: Some(err.to_string()),
                });
            }
        }
    }
    source.retry_redriven(retry);
    let redriven = settled.len();
    if !settled.is_empty() {
        let command = Command::Settle {
            outbox_ids: settled,
        };
        if let Err(err) = source.propose(command, Vec::new()).await {
            // Stored in their targets already; unsettled entries are
            // republished (again) when the group reopens.
            tracing::warn!(queue = %name, error = %err, "settling redriven messages failed");
        }
    }
    Ok(Json(RedriveResponse {
        redriven,
        failed: messages.len() - redriven,
        messages: results,
    }))
}

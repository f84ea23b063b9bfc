//! Redrive: `POST /v1/queues/{q}/redrive` moves up to `max_messages` ready
//! messages out of a queue (typically a dead-letter queue) and republishes
//! them: to `to_queue`, through `to_exchange` (with each message's routing
//! key and headers), or by default back to the queue each came from (its
//! `x-death-queue` header; a message without one goes to the back of this
//! queue). Needs the `manage` or the `consume` scope.
//!
//! What happens to the messages is `crate::queue::redrive`'s.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use sluice_queue::RedriveTarget;
use sluice_routing::RouteError;

use super::CallerAuth;
use super::json::JsonBody;
use super::lookup::queue_group;
use super::problem::ProblemResponses;
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;
use crate::queue;
use crate::queue::dead_letter::Republisher;
use crate::queue::redrive::MAX_REDRIVE;

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
    let source = queue_group(&state, &caller, &name).await?;
    if !(1..=MAX_REDRIVE).contains(&request.max_messages) {
        return Err(BrokerError::validation(
            "max_messages",
            "range",
            format!("must be between 1 and {MAX_REDRIVE}"),
        ));
    }
    let republisher = Republisher {
        queues: state.queues.clone(),
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
            queue_group(&state, &caller, &queue)
                .await
                .map_err(|err| match err {
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
    let results =
        queue::redrive::redrive(&republisher, &source, request.max_messages, target).await?;
    let redriven = results.iter().filter(|r| r.outcome.is_ok()).count();
    let failed = results.len() - redriven;
    let messages = results
        .into_iter()
        .map(|r| match r.outcome {
            Ok(queues) => RedrivenMessage {
                message_id: r.message_id,
                status: "redriven",
                queues: Some(queues),
                detail: None,
            },
            Err(detail) => RedrivenMessage {
                message_id: r.message_id,
                status: "failed",
                queues: None,
                detail: Some(detail),
            },
        })
        .collect();
    Ok(Json(RedriveResponse {
        redriven,
        failed,
        messages,
    }))
}

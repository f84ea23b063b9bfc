//! `/internal/v1`: what the control plane and other brokers ask a broker,
//! authenticated with the node key (the credential every broker presents to
//! the control plane): queue stats for the control plane, storing a
//! message another broker republishes (a dead letter, a redrive) into a
//! queue hosted here, and the bounds of a stream's partitions hosted here
//! (for consumer-group lag on the broker coordinating the groups). The
//! bodies are `sluice-protocol`'s types, the ones the callers read and send.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use sluice_protocol::peer::{QueueRates, QueueStats};

use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;

/// A caller holding the node key.
pub struct NodeAuth;

impl FromRequestParts<Node> for NodeAuth {
    type Rejection = BrokerError;

    async fn from_request_parts(parts: &mut Parts, state: &Node) -> Result<Self, BrokerError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, credential)| credential.trim())
            .ok_or_else(|| {
                BrokerError::Unauthorized("missing Authorization: Bearer <node key>".into())
            })?;
        if state.node_key.proves(presented) {
            Ok(NodeAuth)
        } else {
            Err(BrokerError::Unauthorized("invalid node key".into()))
        }
    }
}

/// `GET /internal/v1/groups/{group_id}/stats`
pub async fn group_stats(
    State(state): State<Node>,
    _node: NodeAuth,
    Path(group_id): Path<String>,
) -> BrokerResult<Json<QueueStats>> {
    let not_found = || BrokerError::NotFound {
        kind: "group",
        name: group_id.clone(),
    };
    // A sleeping queue answers from its summary: listing thousands of
    // queues must not wake them.
    let hosted = state.queues.by_id(&group_id).ok_or_else(not_found)?;
    let stats = hosted.stats().ok_or_else(not_found)?;
    let rates = hosted.rates();
    Ok(Json(QueueStats {
        ready: stats.ready,
        unacked: stats.unacked,
        delayed: stats.delayed,
        ready_bytes: stats.ready_bytes,
        consumers: stats.consumers.len() as u64,
        rates: QueueRates {
            publish: rates.publish,
            deliver: rates.deliver,
            ack: rates.ack,
            redeliver: rates.redeliver,
            dead_letter: rates.dead_letter,
        },
    }))
}

/// `POST /internal/v1/tenants/{tenant_id}/queues/{queue}/republish`: stores
/// a dead letter or redriven message another broker took out of its queue.
/// Anything but 204 makes the sender keep it in its outbox and retry.
pub async fn republish(
    State(state): State<Node>,
    _node: NodeAuth,
    Path((tenant_id, queue)): Path<(i64, String)>,
    super::json::JsonBody(request): super::json::JsonBody<crate::queue::republish::Republish>,
) -> BrokerResult<axum::http::StatusCode> {
    let group = state
        .queues
        .queue(tenant_id, &queue)
        .ok_or_else(|| BrokerError::Unavailable(format!("queue `{queue}` is not hosted here")))?
        .acquire()
        .await?;
    let (message, body) = crate::queue::republish::parts_of(request)
        .map_err(|e| BrokerError::validation("body", "base64", e.to_string()))?;
    crate::queue::dead_letter::store_local(&group, &queue, message, body)
        .await
        .map_err(|e| BrokerError::Unavailable(format!("{e:#}")))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /internal/v1/tenants/{tenant_id}/streams/{stream}/bounds`: the
/// earliest and end offsets of every partition of the stream hosted here
/// (partition → bounds; partitions hosted elsewhere are absent).
pub async fn stream_bounds(
    State(state): State<Node>,
    _node: NodeAuth,
    Path((tenant_id, stream)): Path<(i64, String)>,
) -> BrokerResult<Json<crate::cluster::peers::StreamBounds>> {
    let topology = state.topology.current();
    let placed = topology
        .streams
        .get(&(tenant_id, stream.clone()))
        .ok_or_else(|| BrokerError::NotFound {
            kind: "stream",
            name: stream.clone(),
        })?;
    let partitions = (0..placed.partitions.len() as u32)
        .filter_map(|p| {
            // A sleeping partition answers from its summary.
            let figures = state.partitions.get(tenant_id, &stream, p)?.figures()?;
            let bounds = sluice_stream::PartitionBounds {
                earliest: figures.earliest_offset,
                end: figures.high_watermark,
            };
            Some((p, bounds))
        })
        .collect();
    Ok(Json(crate::cluster::peers::StreamBounds { partitions }))
}

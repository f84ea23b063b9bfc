//! Consumer groups of a stream, on the wire, under
//! `/v1/streams/{s}/groups/{g}`: join, heartbeat, leave, commit, seek,
//! describe (members, assignment, committed offsets and lag) and delete
//! (only a group without members: Kafka's rule). Their
//! commands travel in partition 0's log, where `sluice_stream`'s
//! `GroupCoordinator` applies them (`consume` scope; a forced seek of a
//! group with members needs `admin`).
//!
//! Rebalances are incremental and cooperative (`sluice_stream`'s group
//! module has the protocol): a partition that moves is first *revoked* —
//! the losing member's answers list it in `revoked`, it stops fetching it,
//! may commit where it got to, and acknowledges with its next heartbeat —
//! and only then appears in the new owner's `assignment` (with its
//! committed offset in `committed`). `rebalance_in_progress` is true while
//! any revocation in the group is pending.
//!
//! Sessions expire when the coordinator applies a group command after the
//! session ran out: partition 0's timer proposes `Tick` then, so a silent
//! member leaves and the others rebalance without waiting for traffic.
//!
//! Lag and seeks need every partition's bounds: partitions hosted on other
//! brokers are asked there (a fetch at `latest`, or at a timestamp) with
//! the caller's credential.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use sluice_stream::{
    AssignmentStrategy, GroupCommand, GroupReply, MemberId, PartitionBounds, SeekTarget,
    StreamError,
};

use super::CallerAuth;
use super::json::JsonBody;
use super::lookup::{partition_group, stream_of};
use super::problem::ProblemResponses;
use crate::admission::auth::Caller;
use crate::control::topology::Topology;
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;
use crate::stream::consumer_group::{
    DEFAULT_SESSION_TIMEOUT_MS, MAX_SESSION_TIMEOUT_MS, apply, check_group_name, committed_of,
    group_error,
};
use crate::stream::host::PartitionInUse;
use crate::stream::position;

/// The caller's `Authorization` header, passed on to other brokers.
fn authorization(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Partition 0 of the stream, which coordinates its groups.
async fn coordinator(
    state: &Node,
    caller: &Caller,
    stream: &str,
    group: &str,
) -> BrokerResult<PartitionInUse> {
    caller.require("consume")?;
    stream_of(state, caller, stream)?;
    check_group_name(group)?;
    partition_group(state, caller, stream, 0).await
}

/// What asking for partition positions reads from the node.
fn positions_of<'a>(
    state: &'a Node,
    topology: &'a Topology,
    caller: &Caller,
) -> position::Positions<'a> {
    position::Positions {
        topology,
        partitions: &state.partitions,
        peers: &state.peers,
        node_id: &state.node_id,
        tenant_id: caller.tenant_id,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Rejoin with a known member id (learn the current generation and assignment).
    #[serde(default)]
    member_id: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    /// 1 to 300000 (default 30000).
    #[serde(default)]
    session_timeout_ms: Option<u64>,
    /// `range` (default) or `round-robin`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    strategy: Option<AssignmentStrategy>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JoinResponse {
    member_id: String,
    generation: u64,
    /// The partitions this member owns now: fetch and commit them.
    assignment: Vec<u32>,
    /// Partitions taken from this member: stop fetching them, commit where
    /// it got to, then heartbeat (with this generation) to hand them over.
    revoked: Vec<u32>,
    /// Partitions of the group are still moving: heartbeat promptly, more
    /// may be assigned (or revoked) without a new generation.
    rebalance_in_progress: bool,
    /// The group's committed offsets of the assigned partitions (where to fetch from).
    committed: BTreeMap<u32, u64>,
}

/// Join (or rejoin) a consumer group; answers the member's partitions.
#[utoipa::path(post, path = "/v1/streams/{stream}/groups/{group}/join", tag = "streams",
    params(("stream" = String, Path), ("group" = String, Path)),
    request_body = JoinRequest,
    responses((status = 200, body = JoinResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn join(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path((stream, group)): Path<(String, String)>,
    JsonBody(request): JsonBody<JoinRequest>,
) -> BrokerResult<Json<JoinResponse>> {
    let partition = coordinator(&state, &caller, &stream, &group).await?;
    let session_timeout_ms = request
        .session_timeout_ms
        .unwrap_or(DEFAULT_SESSION_TIMEOUT_MS);
    if !(1..=MAX_SESSION_TIMEOUT_MS).contains(&session_timeout_ms) {
        return Err(BrokerError::validation(
            "session_timeout_ms",
            "range",
            "session_timeout_ms must be 1 to 300000",
        ));
    }
    let command = GroupCommand::Join {
        group: group.clone(),
        member_id: request.member_id.map(MemberId),
        client_id: request.client_id.unwrap_or_else(|| "consumer".into()),
        session_timeout_ms,
        strategy: request.strategy.unwrap_or_default(),
    };
    match apply(&partition, command).await? {
        GroupReply::Joined {
            member_id,
            generation,
            view,
        } => Ok(Json(JoinResponse {
            member_id: member_id.0,
            generation,
            committed: committed_of(&partition, &group, &view.assignment),
            assignment: view.assignment,
            revoked: view.revoked,
            rebalance_in_progress: view.rebalance_in_progress,
        })),
        other => Err(BrokerError::Internal(anyhow::anyhow!("join got {other:?}"))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    member_id: String,
    generation: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HeartbeatResponse {
    generation: u64,
    /// The partitions this member owns now (a hand-over adds to it within
    /// a generation).
    assignment: Vec<u32>,
    /// Partitions still to hand over: none after a heartbeat, which
    /// acknowledges them (kept for symmetry with the join answer).
    revoked: Vec<u32>,
    /// Partitions of the group are still moving: keep heartbeating promptly.
    rebalance_in_progress: bool,
    /// The group's committed offsets of the assigned partitions (where a
    /// newly assigned partition starts).
    committed: BTreeMap<u32, u64>,
}

/// Keep a member's session alive and acknowledge its revocations; 409
/// `stale-generation` means rejoin.
#[utoipa::path(post, path = "/v1/streams/{stream}/groups/{group}/heartbeat", tag = "streams",
    params(("stream" = String, Path), ("group" = String, Path)),
    request_body = HeartbeatRequest,
    responses((status = 200, body = HeartbeatResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn heartbeat(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path((stream, group)): Path<(String, String)>,
    JsonBody(request): JsonBody<HeartbeatRequest>,
) -> BrokerResult<Json<HeartbeatResponse>> {
    let partition = coordinator(&state, &caller, &stream, &group).await?;
    let command = GroupCommand::Heartbeat {
        group: group.clone(),
        member_id: MemberId(request.member_id),
        generation: request.generation,
    };
    match apply(&partition, command).await? {
        GroupReply::HeartbeatOk { generation, view } => Ok(Json(HeartbeatResponse {
            generation,
            committed: committed_of(&partition, &group, &view.assignment),
            assignment: view.assignment,
            revoked: view.revoked,
            rebalance_in_progress: view.rebalance_in_progress,
        })),
        other => Err(BrokerError::Internal(anyhow::anyhow!(
            "heartbeat got {other:?}"
        ))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    member_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GenerationResponse {
    generation: u64,
}

/// Leave a group: the member's partitions go to the others.
#[utoipa::path(post, path = "/v1/streams/{stream}/groups/{group}/leave", tag = "streams",
    params(("stream" = String, Path), ("group" = String, Path)),
    request_body = LeaveRequest,
    responses((status = 200, body = GenerationResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn leave(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path((stream, group)): Path<(String, String)>,
    JsonBody(request): JsonBody<LeaveRequest>,
) -> BrokerResult<Json<GenerationResponse>> {
    let partition = coordinator(&state, &caller, &stream, &group).await?;
    let command = GroupCommand::Leave {
        group,
        member_id: MemberId(request.member_id),
    };
    match apply(&partition, command).await? {
        GroupReply::Left { generation } => Ok(Json(GenerationResponse { generation })),
        other => Err(BrokerError::Internal(anyhow::anyhow!(
            "leave got {other:?}"
        ))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    member_id: String,
    generation: u64,
    /// Partition → the next offset to consume.
    offsets: BTreeMap<u32, u64>,
}

/// Commit the next offsets to consume of the member's partitions, all or
/// nothing (409 when a partition is not the member's in this generation).
#[utoipa::path(post, path = "/v1/streams/{stream}/groups/{group}/commit", tag = "streams",
    params(("stream" = String, Path), ("group" = String, Path)),
    request_body = CommitRequest,
    responses((status = 200, body = GenerationResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn commit(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path((stream, group)): Path<(String, String)>,
    JsonBody(request): JsonBody<CommitRequest>,
) -> BrokerResult<Json<GenerationResponse>> {
    let partition = coordinator(&state, &caller, &stream, &group).await?;
    let command = GroupCommand::Commit {
        group,
        member_id: MemberId(request.member_id),
        generation: request.generation,
        offsets: request.offsets,
    };
    match apply(&partition, command).await? {
        GroupReply::Committed { generation } => Ok(Json(GenerationResponse { generation })),
        other => Err(BrokerError::Internal(anyhow::anyhow!(
            "commit got {other:?}"
        ))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeekRequest {
    /// `earliest`, `latest`, `offsets` or `timestamp`.
    to: String,
    /// With `offsets`: partition → offset (the other partitions keep theirs).
    #[serde(default)]
    offsets: BTreeMap<u32, u64>,
    /// With `timestamp`: every partition to its first record at or after it.
    #[serde(default)]
    timestamp_ms: Option<i64>,
    /// Seek a group that has members (fences their in-flight commits); `admin` scope.
    #[serde(default)]
    force: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SeekResponse {
    generation: u64,
    offsets: BTreeMap<u32, u64>,
}

/// Move a group's committed offsets (the group must have no members unless `force`).
#[utoipa::path(post, path = "/v1/streams/{stream}/groups/{group}/seek", tag = "streams",
    params(("stream" = String, Path), ("group" = String, Path)),
    request_body = SeekRequest,
    responses((status = 200, body = SeekResponse), ProblemResponses),
    security(("bearer" = [])))]
pub async fn seek(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path((stream, group)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SeekRequest>,
) -> BrokerResult<Json<SeekResponse>> {
    let partition = coordinator(&state, &caller, &stream, &group).await?;
    if request.force {
        caller.require("admin")?;
    }
    let partitions = stream_of(&state, &caller, &stream)?.partitions.len() as u32;
    let timestamp_ms = request.timestamp_ms.filter(|_| request.to == "timestamp");
    let topology = state.topology.current();
    let all = position::positions(
        &positions_of(&state, &topology, &caller),
        &stream,
        partitions,
        authorization(&headers),
        timestamp_ms,
    )
    .await?;
    let target = match (request.to.as_str(), request.timestamp_ms) {
        ("earliest", _) => SeekTarget::Earliest,
        ("latest", _) => SeekTarget::Latest,
        ("offsets", _) => SeekTarget::Offsets {
            offsets: request.offsets,
        },
        ("timestamp", Some(timestamp_ms)) => {
            let offsets = all
                .iter()
                .map(|(p, at)| (*p, at.at_timestamp.unwrap_or(at.bounds.end)))
                .collect();
            SeekTarget::Timestamp {
                timestamp_ms,
                offsets,
            }
        }
        ("timestamp", None) => {
            return Err(BrokerError::validation(
                "timestamp_ms",
                "required",
                "a seek to a timestamp needs timestamp_ms",
            ));
        }
        _ => {
            return Err(BrokerError::validation(
                "to",
                "enum",
                "to must be earliest, latest, offsets or timestamp",
            ));
        }
    };
    let command = GroupCommand::Seek {
        group,
        target,
        bounds: all.into_iter().map(|(p, at)| (p, at.bounds)).collect(),
        force: request.force,
    };
    match apply(&partition, command).await? {
        GroupReply::Seeked {
            generation,
            offsets,
        } => Ok(Json(SeekResponse {
            generation,
            offsets,
        })),
        other => Err(BrokerError::Internal(anyhow::anyhow!("seek got {other:?}"))),
    }
}

/// Delete a consumer group and its committed offsets. Kafka's rule: a group
/// with live members is refused (409 `group-not-empty`); they leave first,
/// or their sessions run out.
#[utoipa::path(delete, path = "/v1/streams/{stream}/groups/{group}", tag = "streams",
    params(("stream" = String, Path), ("group" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The group has members (`group-not-empty`)", body = super::problem::Problem, content_type = "application/problem+json"),
        ProblemResponses),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path((stream, group)): Path<(String, String)>,
) -> BrokerResult<axum::http::StatusCode> {
    let partition = coordinator(&state, &caller, &stream, &group).await?;
    match apply(&partition, GroupCommand::DeleteGroup { group }).await? {
        GroupReply::Deleted => Ok(axum::http::StatusCode::NO_CONTENT),
        other => Err(BrokerError::Internal(anyhow::anyhow!(
            "delete got {other:?}"
        ))),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupMember {
    member_id: String,
    client_id: String,
    assignment: Vec<u32>,
    /// Revoked from it, not yet handed over (it has not heartbeated since).
    revoked: Vec<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PartitionLag {
    partition: u32,
    committed: Option<u64>,
    earliest_offset: u64,
    high_watermark: u64,
    /// Records the group has yet to consume.
    lag: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupDescription {
    generation: u64,
    /// Some revocation is pending: partitions are moving.
    rebalance_in_progress: bool,
    #[schema(value_type = String)]
    strategy: String,
    members: Vec<GroupMember>,
    partitions: Vec<PartitionLag>,
}

/// A group's members, assignment, committed offsets and lag.
#[utoipa::path(get, path = "/v1/streams/{stream}/groups/{group}", tag = "streams",
    params(("stream" = String, Path), ("group" = String, Path)),
    responses((status = 200, body = GroupDescription), ProblemResponses),
    security(("bearer" = [])))]
pub async fn describe(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path((stream, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> BrokerResult<Json<GroupDescription>> {
    let partition = coordinator(&state, &caller, &stream, &group).await?;
    let partitions = stream_of(&state, &caller, &stream)?.partitions.len() as u32;
    let authorization = authorization(&headers);
    let topology = state.topology.current();
    let at = positions_of(&state, &topology, &caller);
    let all: BTreeMap<u32, PartitionBounds> =
        position::positions(&at, &stream, partitions, authorization, None)
            .await?
            .into_iter()
            .map(|(p, at)| (p, at.bounds))
            .collect();
    let described = partition.view().coordinator(|c| {
        let g = c
            .group(&group)
            .ok_or_else(|| StreamError::UnknownGroup(group.clone()))?;
        let lag = c.lag(&group, &all)?;
        let members = g
            .members()
            .iter()
            .map(|(id, m)| GroupMember {
                member_id: id.0.clone(),
                client_id: m.client_id.clone(),
                assignment: g.assignment_of(id),
                revoked: g.revoked_from(id),
            })
            .collect();
        let partitions = all
            .iter()
            .map(|(p, b)| PartitionLag {
                partition: *p,
                committed: g.committed(*p),
                earliest_offset: b.earliest,
                high_watermark: b.end,
                lag: lag.get(p).copied().unwrap_or(0),
            })
            .collect();
        Ok::<_, StreamError>(GroupDescription {
            generation: g.generation(),
            rebalance_in_progress: g.rebalance_in_progress(),
            strategy: g.strategy().to_string(),
            members,
            partitions,
        })
    });
    match described {
        Some(result) => Ok(Json(result.map_err(group_error)?)),
        None => Err(BrokerError::Unavailable(
            "partition 0 does not coordinate this stream's groups".into(),
        )),
    }
}

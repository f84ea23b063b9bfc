//! `/internal/v1`: what brokers call — register, heartbeat with the version
//! they have applied (and what they store per tenant), and long-poll the
//! topology feed. Authenticated with the node key, never with tenant keys.
//! The bodies are `sluice-protocol`'s types, the ones brokers send and read.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
pub use sluice_protocol::node::{Heartbeat, HeartbeatAck, RegisterNode};
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

use super::Problems;
use crate::auth::{self, api_key};
use crate::db;
use crate::db::nodes::Node;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::feed::{self, FeedSnapshot, FeedUpdate};
use crate::names;
use crate::placement;
use crate::state::AppState;

/// A caller holding the node key.
pub struct NodeAuth;

impl FromRequestParts<AppState> for NodeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = auth::bearer_credential(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization: Bearer <node key>".into())
        })?;
        let expected = state.node_key_hash.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("this control plane has no node key configured".into())
        })?;
        if bool::from(api_key::hash_secret(presented).ct_eq(expected)) {
            Ok(NodeAuth)
        } else {
            Err(ApiError::Unauthorized("invalid node key".into()))
        }
    }
}

/// Register (or re-register) a broker. Groups short of replicas are placed on it.
#[utoipa::path(put, path = "/internal/v1/nodes/{id}", tag = "internal",
    params(("id" = String, Path, description = "Node id, stable across restarts")),
    request_body = RegisterNode,
    responses((status = 200, body = Node), Problems),
    security(("bearer" = [])))]
pub async fn register_node(
    State(state): State<AppState>,
    _node: NodeAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<RegisterNode>,
) -> ApiResult<Json<Node>> {
    names::resource("id", &id)?;
    if !(request.data_url.starts_with("http://") || request.data_url.starts_with("https://")) {
        return Err(ApiError::validation(
            "data_url",
            "url",
            "must be an http:// or https:// URL",
        ));
    }
    names::resource("zone", &request.zone)?;
    let max_groups = match request.max_groups {
        Some(0) => {
            return Err(ApiError::validation(
                "max_groups",
                "range",
                "must be at least 1 (omit it for no limit)",
            ));
        }
        Some(max) => Some(fits_bigint("max_groups", max)?),
        None => None,
    };
    let registration = db::nodes::Registration {
        data_url: &request.data_url,
        zone: &request.zone,
        max_groups,
        disk_reserve_bytes: fits_bigint("disk_reserve_bytes", request.disk_reserve_bytes)?,
    };
    let mut tx = state.pool.begin().await?;
    // Always a new version: the other brokers learn this node's URL from the
    // feed. Taken first: every change to placements takes the version row
    // before the node rows the placement counts lock (db/mutation.rs).
    db::mutation::bump(&mut tx, 0, "node", &id, "register").await?;
    let node = db::nodes::upsert(&mut tx, &id, &registration).await?;
    let placed = placement::top_up(&mut tx).await?;
    tx.commit().await?;
    tracing::info!(node = %id, groups_placed = placed, "node registered");
    Ok(Json(node))
}

/// A count the node sent, as the `BIGINT` it is stored in.
fn fits_bigint(field: &str, value: u64) -> Result<i64, ApiError> {
    i64::try_from(value)
        .map_err(|_| ApiError::validation(field, "range", format!("must be at most {}", i64::MAX)))
}

/// Checks what the types cannot: tenant ids are positive (as every
/// tenant's is) and byte counts fit the `BIGINT` sums they feed.
fn validate_heartbeat(beat: &Heartbeat) -> Result<(), ApiError> {
    if let Some(free) = beat.disk_free_bytes {
        fits_bigint("disk_free_bytes", free)?;
    }
    for (&tenant, &bytes) in &beat.storage_bytes {
        let field = format!("storage_bytes.{tenant}");
        if tenant < 1 {
            return Err(ApiError::validation(
                field,
                "range",
                "tenant ids are positive integers",
            ));
        }
        if i64::try_from(bytes).is_err() {
            return Err(ApiError::validation(
                field,
                "range",
                format!("must be at most {}", i64::MAX),
            ));
        }
    }
    Ok(())
}

/// Heartbeat with the applied topology version and the bytes stored per tenant; a node that stops is no longer live (nor counted) after 15 s.
#[utoipa::path(post, path = "/internal/v1/nodes/{id}/heartbeat", tag = "internal",
    params(("id" = String, Path, description = "Node id")),
    request_body = Heartbeat,
    responses((status = 200, body = HeartbeatAck), Problems),
    security(("bearer" = [])))]
pub async fn heartbeat(
    State(state): State<AppState>,
    _node: NodeAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(beat): ApiJson<Heartbeat>,
) -> ApiResult<Json<HeartbeatAck>> {
    validate_heartbeat(&beat)?;
    // Checked above: it fits.
    let disk_free = beat.disk_free_bytes.and_then(|b| i64::try_from(b).ok());
    db::nodes::heartbeat(
        &state.pool,
        &id,
        beat.applied_version,
        &beat.storage_bytes,
        disk_free,
    )
    .await?
    .ok_or_else(|| ApiError::not_found("node", id))?;
    // Both read after this node's heartbeat is recorded, so it counts itself
    // (and its new report, not the one it replaces).
    let live_nodes = db::nodes::live_count(&state.pool).await?;
    let storage_used = db::nodes::storage_used(&state.pool).await?;
    // Counts and sums of non-negative reports: never negative.
    let storage_used = storage_used
        .into_iter()
        .map(|(tenant, bytes)| (tenant, u64::try_from(bytes).unwrap_or(0)))
        .collect();
    Ok(Json(HeartbeatAck {
        version: state.versions.current(),
        live_nodes: Some(u64::try_from(live_nodes).unwrap_or(0)),
        storage_used: Some(storage_used),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The version the caller has; the answer waits for a newer one.
    #[serde(default)]
    pub since: i64,
    /// Longest wait for a change, 0 to 60,000 ms (default 30,000).
    pub wait_ms: Option<u64>,
    /// Answer a `FeedUpdate`: only what changed since `since` when that can
    /// be told, else a whole snapshot (brokers ask this way). Without it
    /// the answer is always a bare snapshot.
    #[serde(default)]
    pub changes: bool,
}

/// The topology feed: once the version passes `since`, a full snapshot or
/// (with `changes=true`) the changes since `since`; 204 when `wait_ms`
/// passes without a change.
#[utoipa::path(get, path = "/internal/v1/feed", tag = "internal", params(FeedParams),
    responses(
        (status = 200, description = "A snapshot, or with `changes=true` an update", content(
            (FeedSnapshot = "application/json"),
            (FeedUpdate = "application/json"),
        )),
        (status = 204, description = "No change within wait_ms"),
        Problems),
    security(("bearer" = [])))]
pub async fn topology_feed(
    State(state): State<AppState>,
    _node: NodeAuth,
    ApiQuery(params): ApiQuery<FeedParams>,
) -> ApiResult<Response> {
    let wait = params.wait_ms.unwrap_or(30_000);
    if wait > 60_000 {
        return Err(ApiError::validation(
            "wait_ms",
            "range",
            "must be between 0 and 60000",
        ));
    }
    let version = tokio::select! {
        version = state.versions.wait_past(params.since, Duration::from_millis(wait)) => version,
        // Shutting down: answer now (204 when nothing changed) so the server can stop.
        _ = state.shutdown.cancelled() => state.versions.current(),
    };
    if version <= params.since {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if params.changes {
        let update = feed::load_update(&state.pool, params.since).await?;
        return Ok(Json(update).into_response());
    }
    let snapshot = feed::load_snapshot(&state.pool).await?;
    Ok(Json(snapshot).into_response())
}

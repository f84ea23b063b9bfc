//! Declare-then-publish without sleeps: a topology change answers once every
//! live broker has applied its version (brokers route publishes for any
//! queue, so all of them must know it), or 202 when that takes longer than
//! `apply_wait_ms`. `GET /v1/topology/status` is what a 202 caller polls.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::Problems;
use crate::auth::Principal;
use crate::db;
use crate::error::ApiResult;
use crate::state::AppState;

/// True once every live node has applied `version` (at once when none is live).
pub async fn wait_applied(state: &AppState, version: i64) -> ApiResult<bool> {
    let wait = Duration::from_millis(state.config.apply_wait_ms);
    Ok(state.applied.wait_applied(version, wait).await)
}

/// 200 for an unchanged declare; 201 once a new resource is applied; 202 if not yet.
pub async fn declared_status(
    state: &AppState,
    created: bool,
    version: i64,
) -> ApiResult<StatusCode> {
    if !created {
        return Ok(StatusCode::OK);
    }
    Ok(if wait_applied(state, version).await? {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    })
}

/// 200 once a deletion is applied; 202 if not yet.
pub async fn deleted_status(state: &AppState, version: i64) -> ApiResult<StatusCode> {
    Ok(if wait_applied(state, version).await? {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopologyStatus {
    /// The latest topology version.
    pub version: i64,
    /// The lowest version every live broker has applied (absent with no live broker).
    /// A change at version V is in effect everywhere once this is ≥ V.
    pub applied_version: Option<i64>,
    pub live_nodes: i64,
}

/// How far the brokers have converged; poll it after a 202.
#[utoipa::path(get, path = "/v1/topology/status", tag = "topology",
    responses((status = 200, body = TopologyStatus), Problems),
    security(("bearer" = [])))]
pub async fn topology_status(
    State(state): State<AppState>,
    _principal: Principal,
) -> ApiResult<Json<TopologyStatus>> {
    let (live_nodes, applied_version) = db::nodes::convergence(&state.pool).await?;
    let version = crate::feed::watch::current_version(&state.pool).await?;
    Ok(Json(TopologyStatus {
        version,
        applied_version,
        live_nodes,
    }))
}

/// The brokers and their convergence (operator).
#[utoipa::path(get, path = "/v1/nodes", tag = "topology",
    responses((status = 200, body = Vec<db::nodes::Node>), Problems),
    security(("bearer" = [])))]
pub async fn list_nodes(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<db::nodes::Node>>> {
    principal.require_operator()?;
    Ok(Json(db::nodes::list(&state.pool).await?))
}

//! `/v1/queues`: declare, read, list and delete queues.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::convergence::{declared_status, deleted_status};
use super::{Problems, tenant_actor};
use crate::auth::Principal;
use crate::db;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::model::api_key::Scope;
use crate::model::common::{DeleteParams, Deleted, Page, PageParams};
use crate::model::queue::{Queue, QueueSpec};
use crate::names;
use crate::state::AppState;

/// Declare a queue (idempotent).
///
/// Same settings as the existing queue: 200, unchanged. Different: 409 with
/// `differences` listing each field.
#[utoipa::path(put, path = "/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body = QueueSpec,
    responses(
        (status = 201, description = "Created", body = Queue),
        (status = 202, description = "Created; not yet applied by every broker (poll /v1/topology/status)", body = Queue),
        (status = 200, description = "Already declared with the same settings", body = Queue),
        (status = 409, description = "Declared with different settings", body = crate::error::Problem, content_type = "application/problem+json"),
        Problems
    ),
    security(("bearer" = [])))]
pub async fn declare_queue(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(spec): ApiJson<QueueSpec>,
) -> ApiResult<(StatusCode, Json<Queue>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    names::declarable("name", &name)?;
    spec.validate()?;
    let (created, queue) = db::queues::declare(&state.pool, &actor, &name, spec).await?;
    let status = declared_status(&state, created, queue.topology_version).await?;
    Ok((status, Json(queue)))
}

/// Read a queue with every setting it was declared with.
#[utoipa::path(get, path = "/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    responses((status = 200, body = Queue), Problems),
    security(("bearer" = [])))]
pub async fn get_queue(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<Queue>> {
    let key = principal.tenant_key()?;
    Ok(Json(
        db::queues::get(&state.pool, key.tenant_id, &name).await?,
    ))
}

/// List queues in name order.
#[utoipa::path(get, path = "/v1/queues", tag = "queues", params(PageParams),
    responses((status = 200, body = Page<Queue>), Problems),
    security(("bearer" = [])))]
pub async fn list_queues(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Queue>>> {
    let key = principal.tenant_key()?;
    let limit = page.limit()?;
    let rows = db::queues::list(&state.pool, key.tenant_id, page.after.as_deref(), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |q| q.name.clone())))
}

/// Delete a queue and the bindings to it.
///
/// `if_empty` and `if_unused` refuse deletion of a queue holding messages or
/// consumers; those live on the brokers, which arrive with the broker issue.
#[utoipa::path(delete, path = "/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "Queue name"), DeleteParams),
    responses((status = 200, body = Deleted), (status = 202, description = "Deleted; not yet applied by every broker", body = Deleted), Problems),
    security(("bearer" = [])))]
pub async fn delete_queue(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(_params): ApiQuery<DeleteParams>,
) -> ApiResult<(StatusCode, Json<Deleted>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    let (bindings_removed, topology_version) =
        db::queues::delete(&state.pool, &actor, &name).await?;
    let status = deleted_status(&state, topology_version).await?;
    Ok((
        status,
        Json(Deleted {
            name,
            bindings_removed,
            topology_version,
        }),
    ))
}

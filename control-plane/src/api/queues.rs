//! `/v1/queues`: declare, read, list and delete queues.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::convergence::{declared_status, deleted_status};
use super::{Problems, tenant_actor};
use crate::auth::Principal;
use crate::db;
use crate::db::mutation::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery, StrictJson};
use crate::model::api_key::Scope;
use crate::model::common::{DeleteParams, Deleted, Page, PageParams};
use crate::model::queue::{self, Queue, QueueSettings};
use crate::names;
use crate::state::AppState;

/// Declare a queue (idempotent).
///
/// Same settings as the existing queue: 200, unchanged. Different: 409 with
/// `differences` listing each field.
#[utoipa::path(put, path = "/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body = QueueSettings,
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
    ApiPath(name): ApiPath<String>,
    StrictJson(spec): StrictJson<QueueSettings>,
) -> ApiResult<(StatusCode, Json<Queue>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    names::declarable("name", &name)?;
    queue::validate(&spec)?;
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
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Queue>> {
    let key = principal.tenant_key()?;
    let mut queue = db::queues::get(&state.pool, key.tenant_id, &name).await?;
    match state
        .brokers
        .queue_stats(&state.pool, key.tenant_id, &name)
        .await
    {
        Ok(stats) => queue.stats = stats,
        Err(err) => tracing::warn!(queue = %name, error = %err, "queue stats unavailable"),
    }
    Ok(Json(queue))
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
/// `if_empty` and `if_unused` refuse (409 `in-use`) to delete a queue holding
/// messages or consumers, as reported by the broker hosting it.
#[utoipa::path(delete, path = "/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "Queue name"), DeleteParams),
    responses((status = 200, body = Deleted), (status = 202, description = "Deleted; not yet applied by every broker", body = Deleted), Problems),
    security(("bearer" = [])))]
pub async fn delete_queue(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<(StatusCode, Json<Deleted>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    if params.if_empty || params.if_unused {
        check_unused(&state, &actor, &name, &params).await?;
    }
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

/// The `if_empty` / `if_unused` conditions, asked of the hosting broker before
/// the delete (a message published in between is deleted with the queue, as
/// with any delete). Refuses with 503 rather than guess when no broker answers.
async fn check_unused(
    state: &AppState,
    actor: &Actor,
    name: &str,
    params: &DeleteParams,
) -> ApiResult<()> {
    db::queues::get(&state.pool, actor.tenant_id, name).await?;
    let stats = state
        .brokers
        .queue_stats(&state.pool, actor.tenant_id, name)
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot check queue `{name}`: {e}")))?;
    let Some(stats) = stats else {
        return Ok(()); // never placed on a broker: it cannot hold messages or consumers
    };
    let messages = stats.ready + stats.unacked + stats.delayed;
    if params.if_empty && messages > 0 {
        return Err(ApiError::InUse(format!(
            "queue `{name}` holds {messages} message(s) and if_empty was set"
        )));
    }
    if params.if_unused && stats.consumers > 0 {
        return Err(ApiError::InUse(format!(
            "queue `{name}` has {} consumer(s) and if_unused was set",
            stats.consumers
        )));
    }
    Ok(())
}

//! `/v1/streams`: declare, read, list and delete streams.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::convergence::{declared_status, deleted_status};
use super::{Problems, tenant_actor};
use crate::auth::Principal;
use crate::db;
use crate::error::ApiResult;
use crate::extract::{ApiPath, ApiQuery, StrictJson};
use crate::model::api_key::Scope;
use crate::model::common::{Deleted, Page, PageParams};
use crate::model::stream::{Stream, StreamSettings};
use crate::names;
use crate::state::AppState;

/// Declare a stream (idempotent).
///
/// Same settings as the existing stream: 200, unchanged. Different: 409 with
/// `differences` listing each field.
#[utoipa::path(put, path = "/v1/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "Stream name")),
    request_body = StreamSettings,
    responses(
        (status = 201, description = "Created", body = Stream),
        (status = 202, description = "Created; not yet applied by every broker (poll /v1/topology/status)", body = Stream),
        (status = 200, description = "Already declared with the same settings", body = Stream),
        (status = 409, description = "Declared with different settings", body = crate::error::Problem, content_type = "application/problem+json"),
        Problems
    ),
    security(("bearer" = [])))]
pub async fn declare_stream(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    StrictJson(spec): StrictJson<StreamSettings>,
) -> ApiResult<(StatusCode, Json<Stream>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    names::declarable("name", &name)?;
    let (created, stream) = db::streams::declare(&state.pool, &actor, &name, spec).await?;
    let status = declared_status(&state, created, stream.topology_version).await?;
    Ok((status, Json(stream)))
}

/// Read a stream with every setting it was declared with.
#[utoipa::path(get, path = "/v1/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "Stream name")),
    responses((status = 200, body = Stream), Problems),
    security(("bearer" = [])))]
pub async fn get_stream(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Stream>> {
    let key = principal.tenant_key()?;
    Ok(Json(
        db::streams::get(&state.pool, key.tenant_id, &name).await?,
    ))
}

/// List streams in name order.
#[utoipa::path(get, path = "/v1/streams", tag = "streams", params(PageParams),
    responses((status = 200, body = Page<Stream>), Problems),
    security(("bearer" = [])))]
pub async fn list_streams(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Stream>>> {
    let key = principal.tenant_key()?;
    let limit = page.limit()?;
    let rows = db::streams::list(&state.pool, key.tenant_id, page.after.as_deref(), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |q| q.name.clone())))
}

/// Delete a stream and all its partitions.
#[utoipa::path(delete, path = "/v1/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "Stream name")),
    responses((status = 200, body = Deleted), (status = 202, description = "Deleted; not yet applied by every broker", body = Deleted), Problems),
    security(("bearer" = [])))]
pub async fn delete_stream(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<Deleted>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    let topology_version = db::streams::delete(&state.pool, &actor, &name).await?;
    let status = deleted_status(&state, topology_version).await?;
    Ok((
        status,
        Json(Deleted {
            name,
            bindings_removed: 0,
            topology_version,
        }),
    ))
}

//! `/v1/bindings`: route an exchange's messages to a queue or an exchange.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::convergence::{declared_status, deleted_status};
use super::{Problems, tenant_actor};
use crate::auth::Principal;
use crate::db;
use crate::db::bindings::BindingFilter;
use crate::error::ApiResult;
use crate::extract::{ApiPath, ApiQuery, StrictJson};
use crate::model::api_key::Scope;
use crate::model::binding::{Binding, BindingSpec};
use crate::model::common::{Deleted, Page, PageParams};
use crate::state::AppState;

/// Declare a binding (idempotent).
///
/// A binding is identified by source, destination, routing key and header
/// match; declaring it again returns the same `id` with 200. Declaring it with
/// another `weight` is a 409.
#[utoipa::path(post, path = "/v1/bindings", tag = "bindings",
    request_body = BindingSpec,
    responses(
        (status = 201, description = "Created", body = Binding),
        (status = 200, description = "Already declared", body = Binding),
        (status = 409, description = "Declared with another weight", body = crate::error::Problem, content_type = "application/problem+json"),
        Problems
    ),
    security(("bearer" = [])))]
pub async fn declare_binding(
    State(state): State<AppState>,
    principal: Principal,
    StrictJson(spec): StrictJson<BindingSpec>,
) -> ApiResult<(StatusCode, Json<Binding>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    let (created, binding) = db::bindings::declare(&state.pool, &actor, spec).await?;
    let status = declared_status(&state, created, binding.topology_version).await?;
    Ok((status, Json(binding)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BindingListParams {
    /// Only bindings from this exchange.
    pub source: Option<String>,
    /// Only bindings to this queue or exchange.
    pub destination: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// List bindings in id order.
#[utoipa::path(get, path = "/v1/bindings", tag = "bindings", params(BindingListParams),
    responses((status = 200, body = Page<Binding>), Problems),
    security(("bearer" = [])))]
pub async fn list_bindings(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<BindingListParams>,
) -> ApiResult<Json<Page<Binding>>> {
    let key = principal.tenant_key()?;
    let limit = PageParams {
        limit: params.limit,
        after: None,
    }
    .limit()?;
    let filter = BindingFilter {
        source: params.source.as_deref(),
        destination: params.destination.as_deref(),
    };
    let rows = db::bindings::list(
        &state.pool,
        key.tenant_id,
        &filter,
        params.after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |b| b.id.clone())))
}

/// Read a binding.
#[utoipa::path(get, path = "/v1/bindings/{id}", tag = "bindings",
    params(("id" = String, Path, description = "Binding id")),
    responses((status = 200, body = Binding), Problems),
    security(("bearer" = [])))]
pub async fn get_binding(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Binding>> {
    let key = principal.tenant_key()?;
    Ok(Json(
        db::bindings::get(&state.pool, key.tenant_id, &id).await?,
    ))
}

/// Delete a binding.
#[utoipa::path(delete, path = "/v1/bindings/{id}", tag = "bindings",
    params(("id" = String, Path, description = "Binding id")),
    responses((status = 200, body = Deleted), (status = 202, description = "Deleted; not yet applied by every broker", body = Deleted), Problems),
    security(("bearer" = [])))]
pub async fn delete_binding(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<Deleted>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    let topology_version = db::bindings::delete(&state.pool, &actor, &id).await?;
    let status = deleted_status(&state, topology_version).await?;
    Ok((
        status,
        Json(Deleted {
            name: id,
            bindings_removed: 1,
            topology_version,
        }),
    ))
}

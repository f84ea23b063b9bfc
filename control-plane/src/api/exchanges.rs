//! `/v1/exchanges`: declare, read, list and delete exchanges.

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
use crate::model::common::{DeleteParams, Deleted, Page, PageParams};
use crate::model::exchange::{self, Exchange, ExchangeSpec};
use crate::names;
use crate::state::AppState;

/// Declare a exchange (idempotent).
///
/// Same settings as the existing exchange: 200, unchanged. Different: 409 with
/// `differences` listing each field.
#[utoipa::path(put, path = "/v1/exchanges/{name}", tag = "exchanges",
    params(("name" = String, Path, description = "Exchange name")),
    request_body = ExchangeSpec,
    responses(
        (status = 201, description = "Created", body = Exchange),
        (status = 202, description = "Created; not yet applied by every broker (poll /v1/topology/status)", body = Exchange),
        (status = 200, description = "Already declared with the same settings", body = Exchange),
        (status = 409, description = "Declared with different settings", body = crate::error::Problem, content_type = "application/problem+json"),
        Problems
    ),
    security(("bearer" = [])))]
pub async fn declare_exchange(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    StrictJson(spec): StrictJson<ExchangeSpec>,
) -> ApiResult<(StatusCode, Json<Exchange>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    names::declarable("name", &name)?;
    exchange::validate(&name, &spec)?;
    let (created, exchange) = db::exchanges::declare(&state.pool, &actor, &name, spec).await?;
    let status = declared_status(&state, created, exchange.topology_version).await?;
    Ok((status, Json(exchange)))
}

/// Read a exchange with every setting it was declared with.
#[utoipa::path(get, path = "/v1/exchanges/{name}", tag = "exchanges",
    params(("name" = String, Path, description = "Exchange name")),
    responses((status = 200, body = Exchange), Problems),
    security(("bearer" = [])))]
pub async fn get_exchange(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Exchange>> {
    let key = principal.tenant_key()?;
    Ok(Json(
        db::exchanges::get(&state.pool, key.tenant_id, &name).await?,
    ))
}

/// List exchanges in name order.
#[utoipa::path(get, path = "/v1/exchanges", tag = "exchanges", params(PageParams),
    responses((status = 200, body = Page<Exchange>), Problems),
    security(("bearer" = [])))]
pub async fn list_exchanges(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Exchange>>> {
    let key = principal.tenant_key()?;
    let limit = page.limit()?;
    let rows =
        db::exchanges::list(&state.pool, key.tenant_id, page.after.as_deref(), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |q| q.name.clone())))
}

/// Delete an exchange and every binding from or to it.
///
/// Refused (409) while a queue dead-letters to it or an exchange uses it as
/// alternate exchange, and with `if_unused` while bindings route from it.
#[utoipa::path(delete, path = "/v1/exchanges/{name}", tag = "exchanges",
    params(("name" = String, Path, description = "Exchange name"), DeleteParams),
    responses((status = 200, body = Deleted), (status = 202, description = "Deleted; not yet applied by every broker", body = Deleted), Problems),
    security(("bearer" = [])))]
pub async fn delete_exchange(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<(StatusCode, Json<Deleted>)> {
    let actor = tenant_actor(&principal, Scope::Manage)?;
    let (bindings_removed, topology_version) =
        db::exchanges::delete(&state.pool, &actor, &name, params.if_unused).await?;
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

//! `/v1/api-keys`: a tenant's admin keys create, list and revoke its keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::{Problems, convergence, tenant_actor};
use crate::auth::Principal;
use crate::db;
use crate::db::mutation::Mutation;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::model::api_key::{ApiKey, ApiKeyCreated, CreateApiKey, Scope};
use crate::model::common::{Page, PageParams};
use crate::state::AppState;

/// Create an API key. The response is the only time its secret is shown.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys",
    request_body = CreateApiKey,
    responses((status = 201, body = ApiKeyCreated), Problems),
    security(("bearer" = [])))]
pub async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(mut request): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    let actor = tenant_actor(&principal, Scope::Admin)?;
    request.validate(Utc::now())?;
    let mut m = Mutation::begin(&state.pool, &actor).await?;
    let usage = db::quotas::usage(&mut m.tx, actor.tenant_id).await?;
    m.ensure_quota("max_api_keys", m.quotas.max_api_keys, usage.api_keys, 1)?;
    let created = db::api_keys::insert(&mut m.tx, actor.tenant_id, &request, &actor.name).await?;
    let details = serde_json::json!({ "name": request.name, "scopes": request.scopes, "expires_at": request.expires_at });
    // Brokers verify keys from the topology feed; the bump sends them this one.
    m.bump("api_key", &created.api_key.id, "create").await?;
    let version = m
        .commit("api_key.create", &created.api_key.id, details)
        .await?;
    // Usable on every broker when this returns (the key exists either way).
    convergence::wait_applied(&state, version.unwrap_or_default()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List the tenant's keys (without secrets), revoked ones included.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(PageParams),
    responses((status = 200, body = Page<ApiKey>), Problems),
    security(("bearer" = [])))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ApiKey>>> {
    let key = principal.require(Scope::Admin)?;
    let limit = page.limit()?;
    let rows = db::api_keys::list(&state.pool, key.tenant_id, page.after.as_deref(), limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |k| k.id.clone())))
}

/// Read one key.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "Key id (the part between `sk_` and the second `_`)")),
    responses((status = 200, body = ApiKey), Problems),
    security(("bearer" = [])))]
pub async fn get_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ApiKey>> {
    let key = principal.require(Scope::Admin)?;
    Ok(Json(
        db::api_keys::get(&state.pool, key.tenant_id, &id).await?,
    ))
}

/// Revoke a key. It stops working at once on the control plane.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), Problems),
    security(("bearer" = [])))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ApiKey>> {
    let actor = tenant_actor(&principal, Scope::Admin)?;
    let mut m = Mutation::begin(&state.pool, &actor).await?;
    let revoked = db::api_keys::revoke(&mut m.tx, actor.tenant_id, &id).await?;
    // Brokers cache key verifiers from the topology feed; the bump tells them.
    m.bump("api_key", &id, "revoke").await?;
    let version = m
        .commit("api_key.revoke", &id, serde_json::json!({}))
        .await?;
    // Refused by every live broker when this returns (or within seconds, if one lags).
    convergence::wait_applied(&state, version.unwrap_or_default()).await?;
    Ok(Json(revoked))
}

//! `/v1/tenants`: operators create, list, suspend, resume and delete
//! tenants and set their quotas; a tenant reads its own quotas.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::Problems;
use crate::auth::Principal;
use crate::db;
use crate::db::mutation::{Actor, Mutation};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::model::api_key::{CreateApiKey, Scope};
use crate::model::common::{Deleted, Page, PageParams};
use crate::model::quota::{QuotaReport, QuotasPatch};
use crate::model::tenant::{CreateTenant, Tenant, TenantCreated, TenantStatus};
use crate::names;
use crate::state::AppState;

/// Create a tenant (operator) with its plan's quotas and a first admin key.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = CreateTenant,
    responses(
        (status = 201, body = TenantCreated),
        (status = 409, description = "Name taken", body = crate::error::Problem, content_type = "application/problem+json"),
        Problems
    ),
    security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantCreated>)> {
    principal.require_operator()?;
    names::tenant("name", &request.name)?;
    let mut tx = state.pool.begin().await?;
    let row = db::tenants::insert(&mut tx, &request.name, request.plan).await?;
    db::quotas::write(&mut tx, row.id, &request.plan.defaults()).await?;
    let mut first_key = CreateApiKey {
        name: "initial admin key".into(),
        scopes: vec![Scope::Admin],
        expires_at: None,
    };
    first_key.validate(Utc::now())?;
    let admin_key = db::api_keys::insert(&mut tx, row.id, &first_key, &principal.actor()).await?;
    let version = db::mutation::bump(&mut tx, row.id, "tenant", &row.name, "create").await?;
    db::audit::record(
        &mut tx,
        Some(row.id),
        &row.name,
        &principal.actor(),
        "tenant.create",
        &row.name,
        serde_json::json!({ "plan": request.plan, "admin_key": admin_key.api_key.id }),
    )
    .await?;
    tx.commit().await?;
    // The admin key works on every broker when this returns.
    super::convergence::wait_applied(&state, version).await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant: row.into_api(),
            admin_key,
        }),
    ))
}

/// List tenants in name order (operator).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageParams),
    responses((status = 200, body = Page<Tenant>), Problems),
    security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Tenant>>> {
    principal.require_operator()?;
    let limit = page.limit()?;
    let rows = db::tenants::list(&state.pool, page.after.as_deref(), limit).await?;
    let tenants = rows.into_iter().map(|r| r.into_api()).collect();
    Ok(Json(Page::from_rows(tenants, limit, |t| t.name.clone())))
}

/// Read a tenant (operator, or a key of that tenant).
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = Tenant), Problems),
    security(("bearer" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Tenant>> {
    principal.can_see_tenant(&tenant)?;
    Ok(Json(
        db::tenants::get(&state.pool, &tenant).await?.into_api(),
    ))
}

/// Delete a tenant with every key, exchange, queue, binding and stream it owns (operator).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = Deleted), Problems),
    security(("bearer" = [])))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    principal.require_operator()?;
    let actor = operator_actor(&state, &principal, &tenant).await?;
    let mut m = Mutation::begin(&state.pool, &actor).await?;
    let usage = db::quotas::usage(&mut m.tx, actor.tenant_id).await?;
    // Before the placements go (lock order, db/mutation.rs).
    m.bump("tenant", &tenant, "delete").await?;
    db::tenants::delete(&mut m.tx, actor.tenant_id).await?;
    let details = serde_json::to_value(&usage).unwrap_or_default();
    let version = m
        .commit("tenant.delete", &tenant, details)
        .await?
        .unwrap_or_default();
    super::convergence::wait_applied(&state, version).await?;
    Ok(Json(Deleted {
        name: tenant,
        bindings_removed: usage.bindings,
        topology_version: version,
    }))
}

/// Suspend a tenant: all its keys and tokens are refused until it is resumed (operator).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/suspend", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = Tenant), Problems),
    security(("bearer" = [])))]
pub async fn suspend_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Tenant>> {
    set_status(&state, &principal, &tenant, TenantStatus::Suspended).await
}

/// Resume a suspended tenant (operator).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/resume", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = Tenant), Problems),
    security(("bearer" = [])))]
pub async fn resume_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Tenant>> {
    set_status(&state, &principal, &tenant, TenantStatus::Active).await
}

async fn set_status(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    status: TenantStatus,
) -> ApiResult<Json<Tenant>> {
    principal.require_operator()?;
    let actor = operator_actor(state, principal, tenant).await?;
    let mut m = Mutation::begin(&state.pool, &actor).await?;
    let row = db::tenants::set_status(&mut m.tx, actor.tenant_id, status).await?;
    let action = if status == TenantStatus::Active {
        "resume"
    } else {
        "suspend"
    };
    m.bump("tenant", tenant, action).await?;
    let version = m
        .commit(&format!("tenant.{action}"), tenant, serde_json::json!({}))
        .await?;
    // In effect on every live broker when this returns.
    super::convergence::wait_applied(state, version.unwrap_or_default()).await?;
    Ok(Json(row.into_api()))
}

/// Read a tenant's quotas and what it uses of them (operator, or any key of the tenant).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/quotas", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 200, body = QuotaReport), Problems),
    security(("bearer" = [])))]
pub async fn get_quotas(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<QuotaReport>> {
    principal.can_see_tenant(&tenant)?;
    let row = db::tenants::get(&state.pool, &tenant).await?;
    let limits = db::quotas::get(&state.pool, row.id)
        .await?
        .ok_or_else(|| crate::error::ApiError::not_found("tenant", tenant.as_str()))?;
    let mut conn = state.pool.acquire().await?;
    let usage = db::quotas::usage(&mut conn, row.id).await?;
    let tenant = row.into_api();
    Ok(Json(QuotaReport {
        tenant: tenant.name,
        plan: tenant.plan,
        limits,
        usage,
    }))
}

/// Change some of a tenant's quotas (operator). Lowering a limit below current
/// use is allowed: nothing is deleted, new creates are refused.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/quotas", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = QuotasPatch,
    responses((status = 200, body = QuotaReport), Problems),
    security(("bearer" = [])))]
pub async fn update_quotas(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(patch): ApiJson<QuotasPatch>,
) -> ApiResult<Json<QuotaReport>> {
    principal.require_operator()?;
    let actor = operator_actor(&state, &principal, &tenant).await?;
    let mut m = Mutation::begin(&state.pool, &actor).await?;
    let limits = patch.apply(m.quotas.clone())?;
    db::quotas::write(&mut m.tx, actor.tenant_id, &limits).await?;
    let usage = db::quotas::usage(&mut m.tx, actor.tenant_id).await?;
    // Brokers enforce rates and sizes from the feed; the bump tells them.
    m.bump("quota", &tenant, "update").await?;
    let version = m
        .commit(
            "quota.update",
            &tenant,
            serde_json::to_value(&limits).unwrap_or_default(),
        )
        .await?;
    // Brokers enforce the new rates and sizes when this returns.
    super::convergence::wait_applied(&state, version.unwrap_or_default()).await?;
    let row = db::tenants::get(&state.pool, &tenant).await?;
    Ok(Json(QuotaReport {
        tenant,
        plan: row.into_api().plan,
        limits,
        usage,
    }))
}

/// The operator acting on tenant `name`.
async fn operator_actor(state: &AppState, principal: &Principal, name: &str) -> ApiResult<Actor> {
    let row = db::tenants::get(&state.pool, name).await?;
    Ok(Actor {
        tenant_id: row.id,
        tenant: row.name,
        name: principal.actor(),
    })
}

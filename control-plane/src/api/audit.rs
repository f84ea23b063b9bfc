//! `GET /v1/audit-log`: every mutation, newest first.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::Problems;
use crate::auth::Principal;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::model::api_key::Scope;
use crate::model::common::{Page, PageParams};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Operators only: restrict to one tenant.
    pub tenant: Option<String>,
    pub limit: Option<u32>,
    /// The previous page's `next`.
    pub after: Option<i64>,
}

/// Read the audit log: a tenant's admin keys see their tenant, operators all tenants.
#[utoipa::path(get, path = "/v1/audit-log", tag = "audit", params(AuditParams),
    responses((status = 200, body = Page<AuditEntry>), Problems),
    security(("bearer" = [])))]
pub async fn list_audit_log(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let limit = PageParams {
        limit: params.limit,
        after: None,
    }
    .limit()?;
    let rows = match &principal {
        Principal::Operator => {
            db::audit::list(
                &state.pool,
                None,
                params.tenant.as_deref(),
                params.after,
                limit,
            )
            .await?
        }
        Principal::Tenant(_) => {
            let key = principal.require(Scope::Admin)?;
            if params.tenant.as_deref().is_some_and(|t| t != key.tenant) {
                return Err(ApiError::validation(
                    "tenant",
                    "operator-only",
                    "tenant keys read their own tenant's log",
                ));
            }
            db::audit::list(&state.pool, Some(key.tenant_id), None, params.after, limit).await?
        }
    };
    Ok(Json(Page::from_rows(rows, limit, |e| e.id.to_string())))
}

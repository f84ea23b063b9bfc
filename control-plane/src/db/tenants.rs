//! Tenant rows.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::error::{ApiError, ApiResult};
use crate::model::quota::Plan;
use crate::model::tenant::{Tenant, TenantStatus};

#[derive(sqlx::FromRow)]
pub struct TenantRow {
    pub id: i64,
    pub name: String,
    pub plan: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl TenantRow {
    pub fn into_api(self) -> Tenant {
        Tenant {
            name: self.name,
            plan: Plan::parse(&self.plan).unwrap_or_default(),
            status: if self.status == "suspended" {
                TenantStatus::Suspended
            } else {
                TenantStatus::Active
            },
            created_at: self.created_at,
        }
    }
}

const COLUMNS: &str = "id, name, plan, status, created_at";

pub async fn insert(conn: &mut PgConnection, name: &str, plan: Plan) -> ApiResult<TenantRow> {
    sqlx::query_as(sql!(
        "INSERT INTO tenants (name, plan, status) VALUES ($1, $2, 'active') RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(plan.as_str())
    .fetch_one(conn)
    .await
    .map_err(|e| match ApiError::from(e) {
        ApiError::AlreadyExists(_) => {
            ApiError::AlreadyExists(format!("tenant `{name}` already exists"))
        }
        other => other,
    })
}

pub async fn get(pool: &PgPool, name: &str) -> ApiResult<TenantRow> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM tenants WHERE name = $1"))
        .bind(name)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", name))
}

pub async fn list(
    pool: &PgPool,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<TenantRow>, sqlx::Error> {
    sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM tenants WHERE ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2"
    ))
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: i64,
    status: TenantStatus,
) -> Result<TenantRow, sqlx::Error> {
    let status = match status {
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
    };
    sqlx::query_as(sql!(
        "UPDATE tenants SET status = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(status)
    .fetch_one(conn)
    .await
}

/// Deletes the tenant and, through the foreign keys, everything it owns.
pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

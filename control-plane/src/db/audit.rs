//! The audit log: who changed what, in which tenant, when.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub tenant: Option<String>,
    /// `operator` or `key:<id>`.
    pub actor: String,
    /// `<resource kind>.<verb>`, e.g. `queue.declare`.
    pub action: String,
    pub resource: String,
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

pub async fn record(
    conn: &mut PgConnection,
    tenant_id: Option<i64>,
    tenant: &str,
    actor: &str,
    action: &str,
    resource: &str,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, tenant_name, actor, action, resource, details) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(tenant)
    .bind(actor)
    .bind(action)
    .bind(resource)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

/// Newest first; `before` is the previous page's last id. Tenants filter by
/// id (a re-created tenant of the same name does not see its predecessor's
/// entries); operators by name.
pub async fn list(
    pool: &PgPool,
    tenant_id: Option<i64>,
    tenant: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, tenant_name AS tenant, actor, action, resource, details, at FROM audit_log
         WHERE ($1::bigint IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR tenant_name = $2)
           AND ($3::bigint IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(tenant_id)
    .bind(tenant)
    .bind(before)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await
}

//! The transaction every change to a tenant's resources runs in.
//!
//! Lock order, the same for every mutation so none can deadlock another:
//! the tenant's quota row first (serialising the tenant's creates, which makes
//! count quotas exact under concurrency), then the resources touched, then
//! the global topology version row (held until commit), and only then
//! placements: a placement inserted, changed or deleted (also by a cascade)
//! updates the hosting nodes' `hosted_groups`, locking their rows, so the
//! version row must be taken before anything that touches placements.

use sqlx::{PgConnection, Postgres, Transaction};

use super::quotas;
use crate::error::{ApiError, ApiResult};
use crate::model::quota::Quotas;

/// Who is changing which tenant.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant_id: i64,
    pub tenant: String,
    /// `operator` or `key:<id>`.
    pub name: String,
}

pub struct Mutation<'a> {
    pub tx: Transaction<'static, Postgres>,
    pub quotas: Quotas,
    actor: &'a Actor,
    version: Option<i64>,
}

impl<'a> Mutation<'a> {
    pub async fn begin(pool: &sqlx::PgPool, actor: &'a Actor) -> ApiResult<Mutation<'a>> {
        let mut tx = pool.begin().await?;
        let quotas = quotas::lock(&mut tx, actor.tenant_id)
            .await?
            .ok_or_else(|| ApiError::not_found("tenant", actor.tenant.clone()))?;
        Ok(Mutation {
            tx,
            quotas,
            actor,
            version: None,
        })
    }

    /// Fails with the quota's problem when `used + adding` would pass `limit`.
    pub fn ensure_quota(
        &self,
        quota: &'static str,
        limit: i64,
        used: i64,
        adding: i64,
    ) -> ApiResult<()> {
        if used + adding > limit {
            return Err(ApiError::QuotaExceeded { quota, limit, used });
        }
        Ok(())
    }

    /// Takes the next topology version and records what changed at it.
    pub async fn bump(&mut self, kind: &str, name: &str, action: &str) -> ApiResult<i64> {
        let version = bump(&mut self.tx, self.actor.tenant_id, kind, name, action).await?;
        self.version = Some(version);
        Ok(version)
    }

    /// Writes the audit entry and commits.
    pub async fn commit(
        mut self,
        action: &str,
        resource: &str,
        details: serde_json::Value,
    ) -> ApiResult<Option<i64>> {
        super::audit::record(
            &mut self.tx,
            Some(self.actor.tenant_id),
            &self.actor.tenant,
            &self.actor.name,
            action,
            resource,
            details,
        )
        .await?;
        self.tx.commit().await?;
        Ok(self.version)
    }
}

/// Takes the next topology version (the global row lock, held until commit)
/// and records what changed at it. `tenant_id` 0 marks service-wide changes
/// such as placements moving when a node registers.
pub async fn bump(
    conn: &mut PgConnection,
    tenant_id: i64,
    kind: &str,
    name: &str,
    action: &str,
) -> Result<i64, sqlx::Error> {
    let (version,): (i64,) =
        sqlx::query_as("UPDATE topology_state SET version = version + 1 RETURNING version")
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query("INSERT INTO topology_events (version, tenant_id, kind, name, action) VALUES ($1, $2, $3, $4, $5)")
        .bind(version)
        .bind(tenant_id)
        .bind(kind)
        .bind(name)
        .bind(action)
        .execute(&mut *conn)
        .await?;
    Ok(version)
}

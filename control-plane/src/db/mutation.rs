//! The transaction every change to a tenant's resources runs in.
//!
//! Lock order, the same for every mutation so none can deadlock another:
//! the tenant's quota row first (serialising the tenant's creates, which makes
//! count quotas exact under concurrency), then the resources touched, then
//! the global topology version row (held until commit), and only then
//! placements: a placement inserted, changed or deleted (also by a cascade)
//! updates the hosting nodes' `hosted_groups`, locking their rows, so the
//! version row must be taken before anything that touches placements.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, Transaction};

use super::named::{NamedRow, Table};
use super::quotas::{self, QuotaRow};
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

    /// [`Mutation::begin`] for a declare of `name` in `t`: one statement
    /// locks the tenant's quota row and reads how many of `t` the tenant
    /// holds and the row already named `name` — one round trip under the
    /// tenant's lock where three were, since every declare of the tenant
    /// waits for the lock.
    ///
    /// The count is exact: its row is locked too, and Postgres reads a row
    /// it waited to lock as the commit before left it. The existing row is
    /// not (an outer join cannot lock): it is as of before the wait, so the
    /// caller's insert must tolerate a row committed meanwhile (`ON CONFLICT
    /// DO NOTHING`, then declare again).
    pub async fn begin_declare<S>(
        pool: &sqlx::PgPool,
        actor: &'a Actor,
        t: Table,
        name: &str,
    ) -> ApiResult<Declaring<'a, S>>
    where
        S: DeserializeOwned + Send + Unpin + 'static,
    {
        let mut tx = pool.begin().await?;
        let row: Option<DeclareRow<S>> = sqlx::query_as(sql!(
            "SELECT {}, u.{table} AS used, e.id AS existing_id, e.name AS existing_name,
                    e.settings AS existing_settings, e.version AS existing_version,
                    e.created_at AS existing_created_at
             FROM tenant_quotas q JOIN tenant_usage u ON u.tenant_id = q.tenant_id
             LEFT JOIN {table} e ON e.tenant_id = q.tenant_id AND e.name = $2
             WHERE q.tenant_id = $1 FOR UPDATE OF q, u",
            quotas::COLUMNS,
            table = t.table
        ))
        .bind(actor.tenant_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or_else(|| ApiError::not_found("tenant", actor.tenant.clone()))?;
        let existing = match (
            row.existing_id,
            row.existing_name,
            row.existing_settings,
            row.existing_version,
            row.existing_created_at,
        ) {
            (Some(id), Some(name), Some(settings), Some(version), Some(created_at)) => {
                Some(NamedRow {
                    id,
                    name,
                    settings,
                    version,
                    created_at,
                })
            }
            _ => None,
        };
        Ok(Declaring {
            mutation: Mutation {
                tx,
                quotas: row.quotas.into(),
                actor,
                version: None,
            },
            used: row.used,
            existing,
        })
    }

    /// The version a statement of the mutation's own took (see
    /// [`BUMP_CTE`]).
    pub fn bumped(&mut self, version: i64) {
        self.version = Some(version);
    }

    /// Commits a mutation whose own statement wrote its audit entry.
    pub async fn commit_audited(self) -> ApiResult<Option<i64>> {
        self.tx.commit().await?;
        Ok(self.version)
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

/// A declare under way: the mutation, how many of the resource the tenant
/// holds, and the resource if it already exists.
pub struct Declaring<'a, S> {
    pub mutation: Mutation<'a>,
    pub used: i64,
    pub existing: Option<NamedRow<S>>,
}

#[derive(sqlx::FromRow)]
struct DeclareRow<S> {
    #[sqlx(flatten)]
    quotas: QuotaRow,
    used: i64,
    existing_id: Option<i64>,
    existing_name: Option<String>,
    existing_settings: Option<Json<S>>,
    existing_version: Option<i64>,
    existing_created_at: Option<DateTime<Utc>>,
}

/// [`bump`] as the first part of a statement: a `WITH` that takes the next
/// topology version (`bump.version`) and records the event, with the
/// tenant, kind, name and action as parameters `$1`..`$4`. A statement
/// that goes on to write the resource, its placement and its audit entry
/// holds the global version row for one round trip and the commit, where a
/// statement each held it for six.
pub const BUMP_CTE: &str =
    "WITH bump AS (UPDATE topology_state SET version = version + 1 RETURNING version),
     event AS (INSERT INTO topology_events (version, tenant_id, kind, name, action)
               SELECT version, $1, $2, $3, $4 FROM bump)";

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

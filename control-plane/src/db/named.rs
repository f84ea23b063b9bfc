//! What exchanges, queues and streams share: a tenant-scoped name, declared
//! settings stored as JSON, the topology version of the last change, and
//! declares that are idempotent (same settings: unchanged; else 409).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::error::{ApiError, ApiResult};
use crate::model::common::differences;

/// One of the named resource tables.
#[derive(Clone, Copy)]
pub struct Table {
    pub table: &'static str,
    /// The word used in errors and the topology feed: `exchange`, `queue`, `stream`.
    pub kind: &'static str,
}

pub const EXCHANGES: Table = Table {
    table: "exchanges",
    kind: "exchange",
};
pub const QUEUES: Table = Table {
    table: "queues",
    kind: "queue",
};
pub const STREAMS: Table = Table {
    table: "streams",
    kind: "stream",
};

#[derive(sqlx::FromRow)]
pub struct NamedRow<S> {
    pub id: i64,
    pub name: String,
    pub settings: Json<S>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, settings, version, created_at";

pub async fn find<S>(
    conn: &mut PgConnection,
    t: Table,
    tenant_id: i64,
    name: &str,
) -> Result<Option<NamedRow<S>>, sqlx::Error>
where
    S: DeserializeOwned + Send + Unpin + 'static,
{
    sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM {} WHERE tenant_id = $1 AND name = $2",
        t.table
    ))
    .bind(tenant_id)
    .bind(name)
    .fetch_optional(conn)
    .await
}

pub async fn get<S>(pool: &PgPool, t: Table, tenant_id: i64, name: &str) -> ApiResult<NamedRow<S>>
where
    S: DeserializeOwned + Send + Unpin + 'static,
{
    let mut conn = pool.acquire().await?;
    find(&mut conn, t, tenant_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found(t.kind, name))
}

/// Up to `limit + 1` rows after `after`, in name order.
pub async fn list<S>(
    pool: &PgPool,
    t: Table,
    tenant_id: i64,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<NamedRow<S>>, sqlx::Error>
where
    S: DeserializeOwned + Send + Unpin + 'static,
{
    sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM {} WHERE tenant_id = $1 AND ($2::text IS NULL OR name > $2) ORDER BY name LIMIT $3",
        t.table
    ))
    .bind(tenant_id)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await
}

/// The idempotence rule of every declare: an existing resource with the same
/// settings is returned unchanged; with other settings it is a 409 listing
/// each field that differs.
pub fn redeclare<S: Serialize>(
    t: Table,
    name: &str,
    existing: NamedRow<S>,
    spec: &S,
) -> ApiResult<NamedRow<S>> {
    let diffs = differences(&existing.settings.0, spec);
    if diffs.is_empty() {
        Ok(existing)
    } else {
        Err(ApiError::Conflict {
            kind: t.kind,
            name: name.into(),
            differences: diffs,
        })
    }
}

/// Locks the row for deletion; 404 when it does not exist.
pub async fn lock_for_delete(
    conn: &mut PgConnection,
    t: Table,
    tenant_id: i64,
    name: &str,
) -> ApiResult<i64> {
    let row: Option<(i64,)> = sqlx::query_as(sql!(
        "SELECT id FROM {} WHERE tenant_id = $1 AND name = $2 FOR UPDATE",
        t.table
    ))
    .bind(tenant_id)
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.map(|(id,)| id)
        .ok_or_else(|| ApiError::not_found(t.kind, name))
}

pub async fn delete_row(conn: &mut PgConnection, t: Table, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(sql!("DELETE FROM {} WHERE id = $1", t.table))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

//! Broker nodes: registration, heartbeats, the topology version each has
//! applied and what each stores per tenant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use crate::placement::LIVE_NODE_WINDOW_SECONDS;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Node {
    pub id: String,
    pub data_url: String,
    pub zone: String,
    pub registered_at: DateTime<Utc>,
    pub last_heartbeat_at: DateTime<Utc>,
    pub applied_version: i64,
    /// Group replicas (queues, stream partitions) placed on the node.
    pub hosted_groups: i64,
    /// The most it said it hosts (absent: no limit).
    pub max_groups: Option<i64>,
    /// Free bytes on its data disk at the last heartbeat (absent: not reported).
    pub disk_free_bytes: Option<i64>,
    /// Free bytes it keeps: no group is placed on it with no more than this free.
    pub disk_reserve_bytes: i64,
}

const COLUMNS: &str = "id, data_url, zone, registered_at, last_heartbeat_at, applied_version, \
                       hosted_groups, max_groups, disk_free_bytes, disk_reserve_bytes";

/// What a node says about itself when it registers.
pub struct Registration<'a> {
    pub data_url: &'a str,
    pub zone: &'a str,
    pub max_groups: Option<i64>,
    pub disk_reserve_bytes: i64,
}

pub async fn upsert(
    conn: &mut PgConnection,
    id: &str,
    node: &Registration<'_>,
) -> Result<Node, sqlx::Error> {
    sqlx::query_as(sql!(
        "INSERT INTO nodes (id, data_url, zone, max_groups, disk_reserve_bytes) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET data_url = EXCLUDED.data_url, zone = EXCLUDED.zone,
                                        max_groups = EXCLUDED.max_groups,
                                        disk_reserve_bytes = EXCLUDED.disk_reserve_bytes,
                                        last_heartbeat_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(node.data_url)
    .bind(node.zone)
    .bind(node.max_groups)
    .bind(node.disk_reserve_bytes)
    .fetch_one(conn)
    .await
}

/// Records a heartbeat and the node's storage report, which replaces its
/// previous one; `None` when the node never registered.
pub async fn heartbeat(
    pool: &PgPool,
    id: &str,
    applied_version: i64,
    storage_bytes: &BTreeMap<i64, u64>,
    disk_free_bytes: Option<i64>,
) -> Result<Option<Node>, sqlx::Error> {
    sqlx::query_as(sql!(
        "UPDATE nodes SET last_heartbeat_at = now(), applied_version = GREATEST(applied_version, $2),
                          storage_bytes = $3, disk_free_bytes = $4
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(applied_version)
    .bind(Json(storage_bytes))
    .bind(disk_free_bytes)
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &PgPool) -> Result<Vec<Node>, sqlx::Error> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM nodes ORDER BY id"))
        .fetch_all(pool)
        .await
}

/// How many nodes are live (the same window placement uses).
pub async fn live_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM nodes WHERE last_heartbeat_at > now() - make_interval(secs => $1)",
    )
    .bind(LIVE_NODE_WINDOW_SECONDS)
    .fetch_one(pool)
    .await?;
    Ok(count)
}

/// Bytes stored per tenant: the sum of the live nodes' latest reports.
/// Summed as `numeric` and capped at the largest `BIGINT`, so that many
/// huge reports saturate instead of failing the heartbeat.
pub async fn storage_used(pool: &PgPool) -> Result<BTreeMap<i64, i64>, sqlx::Error> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT report.key::bigint,
                LEAST(sum(report.value::numeric), 9223372036854775807)::bigint
         FROM nodes, jsonb_each_text(nodes.storage_bytes) AS report
         WHERE nodes.last_heartbeat_at > now() - make_interval(secs => $1)
         GROUP BY report.key::bigint",
    )
    .bind(LIVE_NODE_WINDOW_SECONDS)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The live nodes' convergence: (how many are live, the lowest version any
/// of them has applied — `None` when no node is live).
pub async fn convergence(pool: &PgPool) -> Result<(i64, Option<i64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), min(applied_version) FROM nodes
         WHERE last_heartbeat_at > now() - make_interval(secs => $1)",
    )
    .bind(LIVE_NODE_WINDOW_SECONDS)
    .fetch_one(pool)
    .await
}

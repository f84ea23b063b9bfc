//! Broker nodes: registration, heartbeats and the topology version each has applied.

use chrono::{DateTime, Utc};
use serde::Serialize;
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
}

const COLUMNS: &str = "id, data_url, zone, registered_at, last_heartbeat_at, applied_version";

pub async fn upsert(
    conn: &mut PgConnection,
    id: &str,
    data_url: &str,
    zone: &str,
) -> Result<Node, sqlx::Error> {
    sqlx::query_as(sql!(
        "INSERT INTO nodes (id, data_url, zone) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET data_url = EXCLUDED.data_url, zone = EXCLUDED.zone,
                                        last_heartbeat_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(data_url)
    .bind(zone)
    .fetch_one(conn)
    .await
}

/// Records a heartbeat; `None` when the node never registered.
pub async fn heartbeat(
    pool: &PgPool,
    id: &str,
    applied_version: i64,
) -> Result<Option<Node>, sqlx::Error> {
    sqlx::query_as(sql!(
        "UPDATE nodes SET last_heartbeat_at = now(), applied_version = GREATEST(applied_version, $2)
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(applied_version)
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

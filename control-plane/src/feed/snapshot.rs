//! One consistent picture of the topology at a version, as brokers receive it.
//!
//! The whole picture is sent whenever the version moves: brokers replace
//! their cache and converge, so a missed change can never leave one stale.
//! (Per-node filtering and deltas from `topology_events` are the next step
//! when the snapshot grows large.) The shapes are `sluice-protocol`'s, the
//! ones brokers read; this module only maps rows into them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
pub use sluice_protocol::feed::FeedSnapshot;
use sluice_protocol::feed::{
    FeedBinding, FeedExchange, FeedNode, FeedQueue, FeedStream, FeedTenant, KeyVerifier,
};
use sluice_protocol::placement::Placement;
use sqlx::PgPool;
use sqlx::types::Json;

use crate::db::quotas::QuotaRow;
use crate::model::binding::BindingSpec;
use crate::model::exchange::ExchangeSpec;
use crate::model::queue::QueueSettings;
use crate::model::stream::StreamSettings;

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: i64,
    name: String,
    status: String,
    #[sqlx(flatten)]
    quotas: QuotaRow,
}

/// id, tenant id, scopes, hex SHA-256 of the secret, expiry.
type KeyRow = (String, i64, Vec<String>, String, Option<DateTime<Utc>>);

/// tenant id, name, settings, group id and replicas (absent for a queue
/// declared before placements existed).
type QueueRow = (
    i64,
    String,
    Json<QueueSettings>,
    Option<String>,
    Option<Vec<String>>,
);

/// Reads everything in one repeatable-read transaction, so the parts agree
/// with each other and with `version`.
pub async fn load_snapshot(pool: &PgPool) -> Result<FeedSnapshot, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (version,): (i64,) = sqlx::query_as("SELECT version FROM topology_state")
        .fetch_one(&mut *tx)
        .await?;
    let tenants: Vec<TenantRow> = sqlx::query_as(
        "SELECT t.id, t.name, t.status, q.max_queues, q.max_exchanges, q.max_bindings, q.max_streams,
                q.max_partitions, q.max_api_keys, q.max_message_bytes, q.publish_messages_per_second,
                q.publish_bytes_per_second, q.max_storage_bytes
         FROM tenants t JOIN tenant_quotas q ON q.tenant_id = t.id ORDER BY t.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let api_keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT id, tenant_id, scopes, encode(secret_hash, 'hex') AS secret_sha256, expires_at
         FROM api_keys WHERE revoked_at IS NULL ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let exchanges: Vec<(i64, String, Json<ExchangeSpec>)> =
        sqlx::query_as("SELECT tenant_id, name, settings FROM exchanges ORDER BY tenant_id, name")
            .fetch_all(&mut *tx)
            .await?;
    let queues: Vec<QueueRow> = sqlx::query_as(
        "SELECT q.tenant_id, q.name, q.settings, p.group_id, p.replicas
         FROM queues q LEFT JOIN placements p ON p.queue_id = q.id ORDER BY q.tenant_id, q.name",
    )
    .fetch_all(&mut *tx)
    .await?;
    let bindings: Vec<(i64, String, Json<BindingSpec>)> =
        sqlx::query_as("SELECT tenant_id, id, settings FROM bindings ORDER BY tenant_id, id")
            .fetch_all(&mut *tx)
            .await?;
    let streams: Vec<(i64, i64, String, Json<StreamSettings>)> = sqlx::query_as(
        "SELECT id, tenant_id, name, settings FROM streams ORDER BY tenant_id, name",
    )
    .fetch_all(&mut *tx)
    .await?;
    let partitions: Vec<(i64, String, Vec<String>)> = sqlx::query_as(
        "SELECT stream_id, group_id, replicas FROM placements WHERE stream_id IS NOT NULL ORDER BY stream_id, partition",
    )
    .fetch_all(&mut *tx)
    .await?;
    let nodes: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, data_url, zone FROM nodes ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;

    let mut by_stream: HashMap<i64, Vec<Placement>> = HashMap::new();
    for (stream_id, group_id, replicas) in partitions {
        by_stream
            .entry(stream_id)
            .or_default()
            .push(Placement { group_id, replicas });
    }
    Ok(FeedSnapshot {
        version,
        tenants: tenants
            .into_iter()
            .map(|t| FeedTenant {
                id: t.id,
                name: t.name,
                status: t.status,
                quotas: t.quotas.into(),
            })
            .collect(),
        api_keys: api_keys
            .into_iter()
            .map(
                |(id, tenant_id, scopes, secret_sha256, expires_at)| KeyVerifier {
                    id,
                    tenant_id,
                    scopes,
                    secret_sha256,
                    expires_at,
                },
            )
            .collect(),
        exchanges: exchanges
            .into_iter()
            .map(|(tenant_id, name, spec)| FeedExchange {
                tenant_id,
                name,
                spec: spec.0,
            })
            .collect(),
        queues: queues
            .into_iter()
            .map(|(tenant_id, name, spec, group_id, replicas)| FeedQueue {
                tenant_id,
                name,
                spec: spec.0,
                placement: Placement {
                    group_id: group_id.unwrap_or_default(),
                    replicas: replicas.unwrap_or_default(),
                },
            })
            .collect(),
        bindings: bindings
            .into_iter()
            .map(|(tenant_id, id, spec)| FeedBinding {
                tenant_id,
                id,
                spec: spec.0,
            })
            .collect(),
        streams: streams
            .into_iter()
            .map(|(id, tenant_id, name, spec)| FeedStream {
                tenant_id,
                name,
                spec: spec.0,
                partitions: by_stream.remove(&id).unwrap_or_default(),
            })
            .collect(),
        nodes: nodes
            .into_iter()
            .map(|(id, data_url, zone)| FeedNode { id, data_url, zone })
            .collect(),
    })
}

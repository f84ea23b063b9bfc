//! One consistent picture of the topology at a version, as brokers receive it.
//!
//! A broker gets the whole picture first, and again whenever the changes
//! since its version cannot be told (`changes.rs`); it then replaces its
//! cache and converges, so a missed change can never leave one stale. The
//! shapes are `sluice-protocol`'s, the ones brokers read; this module only
//! maps rows into them (the mapping is shared with `changes.rs`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
pub use sluice_protocol::feed::FeedSnapshot;
use sluice_protocol::feed::{
    FeedBinding, FeedExchange, FeedNode, FeedQueue, FeedStream, FeedTenant, KeyVerifier,
};
use sluice_protocol::placement::Placement;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};

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
pub(super) type KeyRow = (String, i64, Vec<String>, String, Option<DateTime<Utc>>);

/// tenant id, name, settings, group id and replicas (absent for a queue
/// declared before placements existed).
pub(super) type QueueRow = (
    i64,
    String,
    Json<QueueSettings>,
    Option<String>,
    Option<Vec<String>>,
);

/// tenant id, name, settings.
pub(super) type ExchangeRow = (i64, String, Json<ExchangeSpec>);
/// tenant id, binding id, settings.
pub(super) type BindingRow = (i64, String, Json<BindingSpec>);
/// stream id, tenant id, name, settings.
pub(super) type StreamRow = (i64, i64, String, Json<StreamSettings>);
/// stream id, group id, replicas.
pub(super) type PartitionRow = (i64, String, Vec<String>);

/// The columns each row type above is read from.
pub(super) const KEY_COLUMNS: &str =
    "id, tenant_id, scopes, encode(secret_hash, 'hex') AS secret_sha256, expires_at";
pub(super) const QUEUE_COLUMNS: &str = "q.tenant_id, q.name, q.settings, p.group_id, p.replicas";
pub(super) const STREAM_COLUMNS: &str = "id, tenant_id, name, settings";
pub(super) const PARTITION_COLUMNS: &str = "stream_id, group_id, replicas";

/// A read-only repeatable-read transaction and the topology version it
/// sees: everything read in it agrees with that version.
pub(super) async fn consistent_read(
    pool: &PgPool,
) -> Result<(Transaction<'static, Postgres>, i64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (version,): (i64,) = sqlx::query_as("SELECT version FROM topology_state")
        .fetch_one(&mut *tx)
        .await?;
    Ok((tx, version))
}

/// Reads everything in one repeatable-read transaction, so the parts agree
/// with each other and with `version`.
pub async fn load_snapshot(pool: &PgPool) -> Result<FeedSnapshot, sqlx::Error> {
    let (mut tx, version) = consistent_read(pool).await?;
    let tenants: Vec<TenantRow> = sqlx::query_as(
        "SELECT t.id, t.name, t.status, q.max_queues, q.max_exchanges, q.max_bindings, q.max_streams,
                q.max_partitions, q.max_api_keys, q.max_message_bytes, q.publish_messages_per_second,
                q.publish_bytes_per_second, q.max_storage_bytes
         FROM tenants t JOIN tenant_quotas q ON q.tenant_id = t.id ORDER BY t.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let api_keys: Vec<KeyRow> = sqlx::query_as(sql!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL ORDER BY id"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let exchanges: Vec<ExchangeRow> =
        sqlx::query_as("SELECT tenant_id, name, settings FROM exchanges ORDER BY tenant_id, name")
            .fetch_all(&mut *tx)
            .await?;
    let queues: Vec<QueueRow> = sqlx::query_as(sql!(
        "SELECT {QUEUE_COLUMNS}
         FROM queues q LEFT JOIN placements p ON p.queue_id = q.id ORDER BY q.tenant_id, q.name"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let bindings: Vec<BindingRow> =
        sqlx::query_as("SELECT tenant_id, id, settings FROM bindings ORDER BY tenant_id, id")
            .fetch_all(&mut *tx)
            .await?;
    let streams: Vec<StreamRow> = sqlx::query_as(sql!(
        "SELECT {STREAM_COLUMNS} FROM streams ORDER BY tenant_id, name"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let partitions: Vec<PartitionRow> = sqlx::query_as(sql!(
        "SELECT {PARTITION_COLUMNS} FROM placements WHERE stream_id IS NOT NULL ORDER BY stream_id, partition"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let nodes: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, data_url, zone FROM nodes ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;

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
        api_keys: api_keys.into_iter().map(key_verifier).collect(),
        exchanges: exchanges.into_iter().map(feed_exchange).collect(),
        queues: queues.into_iter().map(feed_queue).collect(),
        bindings: bindings.into_iter().map(feed_binding).collect(),
        streams: feed_streams(streams, partitions),
        nodes: nodes
            .into_iter()
            .map(|(id, data_url, zone)| FeedNode { id, data_url, zone })
            .collect(),
    })
}

/// The rows below, as the feed (a snapshot or changes) carries them.
pub(super) fn key_verifier(
    (id, tenant_id, scopes, secret_sha256, expires_at): KeyRow,
) -> KeyVerifier {
    KeyVerifier {
        id,
        tenant_id,
        scopes,
        secret_sha256,
        expires_at,
    }
}

pub(super) fn feed_exchange((tenant_id, name, spec): ExchangeRow) -> FeedExchange {
    FeedExchange {
        tenant_id,
        name,
        spec: spec.0,
    }
}

pub(super) fn feed_binding((tenant_id, id, spec): BindingRow) -> FeedBinding {
    FeedBinding {
        tenant_id,
        id,
        spec: spec.0,
    }
}

pub(super) fn feed_queue((tenant_id, name, spec, group_id, replicas): QueueRow) -> FeedQueue {
    FeedQueue {
        tenant_id,
        name,
        spec: spec.0,
        placement: Placement {
            group_id: group_id.unwrap_or_default(),
            replicas: replicas.unwrap_or_default(),
        },
    }
}

/// Streams with their partitions' placements (`partitions` in partition order).
pub(super) fn feed_streams(
    streams: Vec<StreamRow>,
    partitions: Vec<PartitionRow>,
) -> Vec<FeedStream> {
    let mut by_stream: HashMap<i64, Vec<Placement>> = HashMap::new();
    for (stream_id, group_id, replicas) in partitions {
        by_stream
            .entry(stream_id)
            .or_default()
            .push(Placement { group_id, replicas });
    }
    streams
        .into_iter()
        .map(|(id, tenant_id, name, spec)| FeedStream {
            tenant_id,
            name,
            spec: spec.0,
            partitions: by_stream.remove(&id).unwrap_or_default(),
        })
        .collect()
}

//! Tenant quota rows and usage counts.

use sqlx::{PgConnection, PgPool};

use crate::model::quota::{Quotas, Usage};
use crate::placement::LIVE_NODE_WINDOW_SECONDS;

const COLUMNS: &str = "max_queues, max_exchanges, max_bindings, max_streams, max_partitions, max_api_keys, \
                       max_message_bytes, publish_messages_per_second, publish_bytes_per_second, max_storage_bytes";

/// A `tenant_quotas` row's limits ([`COLUMNS`]); `Quotas` itself is the
/// wire type shared with brokers, which knows no database.
#[derive(sqlx::FromRow)]
pub struct QuotaRow {
    max_queues: i64,
    max_exchanges: i64,
    max_bindings: i64,
    max_streams: i64,
    max_partitions: i64,
    max_api_keys: i64,
    max_message_bytes: i64,
    publish_messages_per_second: i64,
    publish_bytes_per_second: i64,
    max_storage_bytes: i64,
}

impl From<QuotaRow> for Quotas {
    fn from(row: QuotaRow) -> Self {
        Quotas {
            max_queues: row.max_queues,
            max_exchanges: row.max_exchanges,
            max_bindings: row.max_bindings,
            max_streams: row.max_streams,
            max_partitions: row.max_partitions,
            max_api_keys: row.max_api_keys,
            max_message_bytes: row.max_message_bytes,
            publish_messages_per_second: row.publish_messages_per_second,
            publish_bytes_per_second: row.publish_bytes_per_second,
            max_storage_bytes: row.max_storage_bytes,
        }
    }
}

/// Reads and locks the tenant's quota row for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, tenant_id: i64) -> Result<Option<Quotas>, sqlx::Error> {
    let row: Option<QuotaRow> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM tenant_quotas WHERE tenant_id = $1 FOR UPDATE"
    ))
    .bind(tenant_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Quotas::from))
}

pub async fn get(pool: &PgPool, tenant_id: i64) -> Result<Option<Quotas>, sqlx::Error> {
    let row: Option<QuotaRow> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM tenant_quotas WHERE tenant_id = $1"
    ))
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Quotas::from))
}

pub async fn write(conn: &mut PgConnection, tenant_id: i64, q: &Quotas) -> Result<(), sqlx::Error> {
    sqlx::query(sql!(
        "INSERT INTO tenant_quotas (tenant_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (tenant_id) DO UPDATE SET
           max_queues = EXCLUDED.max_queues, max_exchanges = EXCLUDED.max_exchanges,
           max_bindings = EXCLUDED.max_bindings, max_streams = EXCLUDED.max_streams,
           max_partitions = EXCLUDED.max_partitions, max_api_keys = EXCLUDED.max_api_keys,
           max_message_bytes = EXCLUDED.max_message_bytes,
           publish_messages_per_second = EXCLUDED.publish_messages_per_second,
           publish_bytes_per_second = EXCLUDED.publish_bytes_per_second,
           max_storage_bytes = EXCLUDED.max_storage_bytes"
    ))
    .bind(tenant_id)
    .bind(q.max_queues)
    .bind(q.max_exchanges)
    .bind(q.max_bindings)
    .bind(q.max_streams)
    .bind(q.max_partitions)
    .bind(q.max_api_keys)
    .bind(q.max_message_bytes)
    .bind(q.publish_messages_per_second)
    .bind(q.publish_bytes_per_second)
    .bind(q.max_storage_bytes)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the tenant uses: its counters (kept by triggers, see the
/// `tenant_usage` migration, so this costs the same however much it holds)
/// and a count of its usable keys; run inside the mutation that holds the
/// quota lock, so they cannot change before the insert. Storage is
/// the sum of the live nodes' latest reports (see `nodes::storage_used`),
/// which the lock does not cover: brokers, not creates, change it.
pub async fn usage(conn: &mut PgConnection, tenant_id: i64) -> Result<Usage, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.queues, u.exchanges, u.bindings, u.streams, u.partitions,
           (SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL
              AND (expires_at IS NULL OR expires_at > now())) AS api_keys,
           (SELECT LEAST(coalesce(sum((storage_bytes ->> $1::text)::numeric), 0),
                         9223372036854775807)::bigint
              FROM nodes WHERE last_heartbeat_at > now() - make_interval(secs => $2)) AS storage_bytes
         FROM tenant_usage u WHERE u.tenant_id = $1",
    )
    .bind(tenant_id)
    .bind(LIVE_NODE_WINDOW_SECONDS)
    .fetch_one(conn)
    .await
}

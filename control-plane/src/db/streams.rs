//! Stream rows.

use sqlx::PgPool;
use sqlx::types::Json;

use super::mutation::{Actor, Mutation};
use super::named::{self, NamedRow, STREAMS};
use crate::error::ApiResult;
use crate::model::stream::{Stream, StreamSettings};
use crate::placement::{self, GroupOwner};

impl From<NamedRow<StreamSettings>> for Stream {
    fn from(row: NamedRow<StreamSettings>) -> Self {
        Stream {
            name: row.name,
            spec: row.settings.0,
            topology_version: row.version,
            created_at: row.created_at,
        }
    }
}

pub async fn get(pool: &PgPool, tenant_id: i64, name: &str) -> ApiResult<Stream> {
    Ok(named::get::<StreamSettings>(pool, STREAMS, tenant_id, name)
        .await?
        .into())
}

pub async fn list(
    pool: &PgPool,
    tenant_id: i64,
    after: Option<&str>,
    limit: u32,
) -> ApiResult<Vec<Stream>> {
    let rows = named::list::<StreamSettings>(pool, STREAMS, tenant_id, after, limit).await?;
    Ok(rows.into_iter().map(Stream::from).collect())
}

/// Creates the stream, or confirms an identical one (`Ok((false, _))`).
/// Counts against both the stream and the partition quota.
pub async fn declare(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    spec: StreamSettings,
) -> ApiResult<(bool, Stream)> {
    let mut m = Mutation::begin(pool, actor).await?;
    // Validated here, under the lock, because the largest message allowed is a quota.
    crate::model::stream::validate(&spec, m.quotas.max_message_bytes)?;
    if let Some(existing) = named::find(&mut m.tx, STREAMS, actor.tenant_id, name).await? {
        return Ok((
            false,
            named::redeclare(STREAMS, name, existing, &spec)?.into(),
        ));
    }
    let usage = super::quotas::usage(&mut m.tx, actor.tenant_id).await?;
    m.ensure_quota("max_streams", m.quotas.max_streams, usage.streams, 1)?;
    m.ensure_quota(
        "max_partitions",
        m.quotas.max_partitions,
        usage.partitions,
        i64::from(spec.partitions),
    )?;
    let version = m.bump(STREAMS.kind, name, "declare").await?;
    let row: NamedRow<StreamSettings> = sqlx::query_as(
        "INSERT INTO streams (tenant_id, name, partitions, settings, version)
         VALUES ($1, $2, $3, $4, $5) RETURNING id, name, settings, version, created_at",
    )
    .bind(actor.tenant_id)
    .bind(name)
    .bind(i64::from(spec.partitions))
    .bind(Json(&spec))
    .bind(version)
    .fetch_one(&mut *m.tx)
    .await?;
    let mut replicas = Vec::new();
    for partition in 0..spec.partitions as i32 {
        let owner = GroupOwner::StreamPartition {
            stream_id: row.id,
            partition,
        };
        replicas.push(
            placement::place_group(&mut m.tx, actor.tenant_id, owner, spec.replication_factor)
                .await?,
        );
    }
    let details = serde_json::json!({ "settings": spec, "replicas": replicas });
    m.commit("stream.declare", name, details).await?;
    Ok((true, row.into()))
}

/// Deletes the stream (its partitions' data goes with it on the brokers).
pub async fn delete(pool: &PgPool, actor: &Actor, name: &str) -> ApiResult<i64> {
    let mut m = Mutation::begin(pool, actor).await?;
    let id = named::lock_for_delete(&mut m.tx, STREAMS, actor.tenant_id, name).await?;
    // Before the placements go (lock order, db/mutation.rs).
    m.bump(STREAMS.kind, name, "delete").await?;
    named::delete_row(&mut m.tx, STREAMS, id).await?;
    let version = m
        .commit("stream.delete", name, serde_json::json!({}))
        .await?;
    Ok(version.unwrap_or_default())
}

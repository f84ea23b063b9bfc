//! Queue rows.

use sqlx::PgPool;
use sqlx::types::Json;

use super::mutation::{Actor, Mutation};
use super::named::{self, NamedRow, QUEUES};
use crate::error::ApiResult;
use crate::model::queue::{Queue, QueueSettings};
use crate::placement::{self, GroupOwner};

impl From<NamedRow<QueueSettings>> for Queue {
    fn from(row: NamedRow<QueueSettings>) -> Self {
        Queue {
            name: row.name,
            spec: row.settings.0,
            topology_version: row.version,
            created_at: row.created_at,
            stats: None,
        }
    }
}

pub async fn get(pool: &PgPool, tenant_id: i64, name: &str) -> ApiResult<Queue> {
    Ok(named::get::<QueueSettings>(pool, QUEUES, tenant_id, name)
        .await?
        .into())
}

pub async fn list(
    pool: &PgPool,
    tenant_id: i64,
    after: Option<&str>,
    limit: u32,
) -> ApiResult<Vec<Queue>> {
    let rows = named::list::<QueueSettings>(pool, QUEUES, tenant_id, after, limit).await?;
    Ok(rows.into_iter().map(Queue::from).collect())
}

/// Creates the queue, or confirms an identical one (`Ok((false, _))`).
pub async fn declare(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    spec: QueueSettings,
) -> ApiResult<(bool, Queue)> {
    let mut m = Mutation::begin(pool, actor).await?;
    if let Some(existing) = named::find(&mut m.tx, QUEUES, actor.tenant_id, name).await? {
        return Ok((
            false,
            named::redeclare(QUEUES, name, existing, &spec)?.into(),
        ));
    }
    let usage = super::quotas::usage(&mut m.tx, actor.tenant_id).await?;
    m.ensure_quota("max_queues", m.quotas.max_queues, usage.queues, 1)?;
    let dlx_id = match &spec.dead_letter_exchange {
        Some(dlx) => Some(
            super::exchanges::resolve_reference(
                &mut m.tx,
                actor.tenant_id,
                "dead_letter_exchange",
                dlx,
            )
            .await?
            .id,
        ),
        None => None,
    };
    let version = m.bump(QUEUES.kind, name, "declare").await?;
    let row: NamedRow<QueueSettings> = sqlx::query_as(
        "INSERT INTO queues (tenant_id, name, settings, dead_letter_exchange_id, version)
         VALUES ($1, $2, $3, $4, $5) RETURNING id, name, settings, version, created_at",
    )
    .bind(actor.tenant_id)
    .bind(name)
    .bind(Json(&spec))
    .bind(dlx_id)
    .bind(version)
    .fetch_one(&mut *m.tx)
    .await?;
    let owner = GroupOwner::Queue(row.id);
    let replicas =
        placement::place_group(&mut m.tx, actor.tenant_id, owner, spec.replication_factor).await?;
    let details = serde_json::json!({ "settings": spec, "replicas": replicas });
    m.commit("queue.declare", name, details).await?;
    Ok((true, row.into()))
}

/// Deletes the queue and the bindings to it. Returns (bindings removed, version).
///
/// `if_empty` / `if_unused` depend on the queue's messages and consumers,
/// which live on the brokers; until a broker hosts queues (issue 4) a queue
/// has neither, so the handler's checks pass.
pub async fn delete(pool: &PgPool, actor: &Actor, name: &str) -> ApiResult<(i64, i64)> {
    let mut m = Mutation::begin(pool, actor).await?;
    let id = named::lock_for_delete(&mut m.tx, QUEUES, actor.tenant_id, name).await?;
    // Before the placement goes (lock order, db/mutation.rs).
    m.bump(QUEUES.kind, name, "delete").await?;
    let removed = sqlx::query("DELETE FROM bindings WHERE destination_queue_id = $1")
        .bind(id)
        .execute(&mut *m.tx)
        .await?
        .rows_affected() as i64;
    named::delete_row(&mut m.tx, QUEUES, id).await?;
    let version = m
        .commit(
            "queue.delete",
            name,
            serde_json::json!({ "bindings_removed": removed }),
        )
        .await?;
    Ok((removed, version.unwrap_or_default()))
}

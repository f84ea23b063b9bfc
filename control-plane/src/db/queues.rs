//! Queue rows.

use sqlx::PgPool;
use sqlx::types::Json;

use super::mutation::{Actor, BUMP_CTE, Mutation};
use super::named::{self, NamedRow, QUEUES};
use crate::error::{ApiError, ApiResult};
use crate::model::queue::{Queue, QueueSettings};
use crate::placement;

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
///
/// Every declare of a tenant waits for the tenant's lock, and every declare
/// of the service for the topology version row, so this keeps both short:
/// the brokers' room is read before either (placement is a choice among
/// live brokers that other declares change anyway); one statement takes the
/// tenant's lock and reads the existing queue and the count; one more takes
/// the version and writes the event, the queue, its placement and the audit
/// entry; then the commit.
pub async fn declare(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    spec: QueueSettings,
) -> ApiResult<(bool, Queue)> {
    let candidates = {
        let mut conn = pool.acquire().await?;
        placement::live_candidates(&mut conn).await?
    };
    // Another declare of the same name may commit while this one waits for
    // the tenant's lock: the next attempt sees it. Only a queue deleted and
    // declared again in between, again and again, exhausts the attempts.
    for _ in 0..3 {
        if let Some(declared) = try_declare(pool, actor, name, &spec, &candidates).await? {
            return Ok(declared);
        }
    }
    Err(ApiError::Unavailable(format!(
        "queue `{name}` kept changing while it was declared; retry"
    )))
}

/// One attempt of [`declare`]; `None` when the queue appeared meanwhile.
async fn try_declare(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    spec: &QueueSettings,
    candidates: &[placement::Candidate],
) -> ApiResult<Option<(bool, Queue)>> {
    let declaring = Mutation::begin_declare::<QueueSettings>(pool, actor, QUEUES, name).await?;
    let mut m = declaring.mutation;
    if let Some(existing) = declaring.existing {
        let existing = named::redeclare(QUEUES, name, existing, spec)?;
        return Ok(Some((false, existing.into())));
    }
    m.ensure_quota("max_queues", m.quotas.max_queues, declaring.used, 1)?;
    // A redeclare answers even when no broker has room; a new queue not.
    let replicas = placement::replicas_for_new_group(candidates, spec.replication_factor)?;
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
    let details = serde_json::json!({ "settings": spec, "replicas": replicas });
    let row: Option<NamedRow<QueueSettings>> = sqlx::query_as(sql!(
        "{BUMP_CTE},
         queue AS (INSERT INTO queues (tenant_id, name, settings, dead_letter_exchange_id, version)
                   SELECT $1, $3, $5, $6, version FROM bump
                   ON CONFLICT (tenant_id, name) DO NOTHING
                   RETURNING id, name, settings, version, created_at),
         placed AS (INSERT INTO placements (group_id, tenant_id, queue_id, replication_factor, replicas)
                    SELECT $7 || id, $1, id, $8, $9 FROM queue),
         audit AS (INSERT INTO audit_log (tenant_id, tenant_name, actor, action, resource, details)
                   VALUES ($1, $10, $11, 'queue.declare', $3, $12))
         SELECT id, name, settings, version, created_at FROM queue"
    ))
    .bind(actor.tenant_id)
    .bind(QUEUES.kind)
    .bind(name)
    .bind("declare")
    .bind(Json(spec))
    .bind(dlx_id)
    .bind(placement::QUEUE_GROUP_PREFIX)
    .bind(i32::from(spec.replication_factor))
    .bind(&replicas)
    .bind(&actor.tenant)
    .bind(&actor.name)
    .bind(details)
    .fetch_optional(&mut *m.tx)
    .await?;
    let Some(row) = row else {
        // Dropping the transaction rolls back the version taken.
        return Ok(None);
    };
    m.bumped(row.version);
    m.commit_audited().await?;
    Ok(Some((true, row.into())))
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

//! Queue rows.

use sqlx::PgPool;
use sqlx::types::Json;

use chrono::{DateTime, Utc};

use super::mutation::{Actor, Mutation};
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
/// of the service for the topology version row, so a declare is one
/// statement ([`DECLARE`]) that runs as its own transaction: the locks are
/// held while Postgres executes it, never across a round trip to this
/// process. The brokers' room is read before it (placement is a choice
/// among live brokers that other declares change anyway).
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
    // A redeclare answers even when no broker has room; a new queue not.
    let replicas = placement::replicas_for_new_group(&candidates, spec.replication_factor);
    // The statement reads the existing queue and the dead-letter exchange
    // as they were before it waited for the tenant's lock: a queue declared
    // or an exchange deleted meanwhile sends it round again, to answer as
    // the next attempt sees them. Only a topology changing again and again
    // in between exhausts the attempts.
    for _ in 0..3 {
        match try_declare(pool, actor, name, &spec, replicas.as_ref().ok()).await? {
            Attempt::Done(declared) => return Ok(*declared),
            Attempt::NoRoom => return Err(replicas.err().unwrap_or_else(no_room)),
            Attempt::Again => {}
        }
    }
    Err(ApiError::Unavailable(format!(
        "queue `{name}` kept changing while it was declared; retry"
    )))
}

/// Only when the statement and the placement disagree about room.
fn no_room() -> ApiError {
    ApiError::Unavailable("no broker has room for another group; retry".into())
}

/// How one attempt of [`declare`] ended.
enum Attempt {
    Done(Box<(bool, Queue)>),
    /// Nothing exists by that name and no broker has room for its group.
    NoRoom,
    /// What the statement read changed while it waited: try again.
    Again,
}

/// Locks the tenant's quota and usage rows (the count is then as the last
/// commit left it: Postgres re-reads a row it waited to lock), reads the
/// queue of that name and the dead-letter exchange, and only if there is
/// no such queue, the quota allows one more, a broker has room (`$11`) and
/// the exchange exists: takes
/// the next topology version and writes the event, the queue (`ON CONFLICT
/// DO NOTHING`: one committed while this waited), its placement and the
/// audit entry. Lock order as in `db/mutation.rs`: tenant, version row,
/// placements.
const DECLARE: &str = "
WITH locked AS (
    SELECT q.max_queues, u.queues AS used
    FROM tenant_quotas q JOIN tenant_usage u ON u.tenant_id = q.tenant_id
    WHERE q.tenant_id = $1
    FOR UPDATE OF q, u),
existing AS (
    SELECT id, name, settings, version, created_at FROM queues
    WHERE tenant_id = $1 AND name = $2),
dlx AS (
    SELECT id FROM exchanges WHERE tenant_id = $1 AND name = $4),
go AS (
    SELECT 1 FROM locked
    WHERE used < max_queues AND $11
      AND NOT EXISTS (SELECT 1 FROM existing)
      AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM dlx))),
bump AS (
    UPDATE topology_state SET version = version + 1
    WHERE EXISTS (SELECT 1 FROM go) RETURNING version),
event AS (
    INSERT INTO topology_events (version, tenant_id, kind, name, action)
    SELECT version, $1, 'queue', $2, 'declare' FROM bump),
queue AS (
    INSERT INTO queues (tenant_id, name, settings, dead_letter_exchange_id, version)
    SELECT $1, $2, $3, (SELECT id FROM dlx), version FROM bump
    ON CONFLICT (tenant_id, name) DO NOTHING
    RETURNING id, name, settings, version, created_at),
placed AS (
    INSERT INTO placements (group_id, tenant_id, queue_id, replication_factor, replicas)
    SELECT $5 || id, $1, id, $6, $7 FROM queue),
audit AS (
    INSERT INTO audit_log (tenant_id, tenant_name, actor, action, resource, details)
    SELECT $1, $8, $9, 'queue.declare', $2, $10 FROM queue)
SELECT l.max_queues, l.used, EXISTS (SELECT 1 FROM dlx) AS dlx_found,
       q.id AS new_id, q.settings AS new_settings, q.version AS new_version,
       q.created_at AS new_created_at,
       e.id AS existing_id, e.settings AS existing_settings,
       e.version AS existing_version, e.created_at AS existing_created_at
FROM locked l LEFT JOIN queue q ON true LEFT JOIN existing e ON true";

/// What [`DECLARE`] found and did.
#[derive(sqlx::FromRow)]
struct Declared {
    max_queues: i64,
    used: i64,
    dlx_found: bool,
    new_id: Option<i64>,
    new_settings: Option<Json<QueueSettings>>,
    new_version: Option<i64>,
    new_created_at: Option<DateTime<Utc>>,
    existing_id: Option<i64>,
    existing_settings: Option<Json<QueueSettings>>,
    existing_version: Option<i64>,
    existing_created_at: Option<DateTime<Utc>>,
}

/// One attempt of [`declare`]; `replicas` is `None` when no broker has room.
async fn try_declare(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    spec: &QueueSettings,
    replicas: Option<&Vec<String>>,
) -> ApiResult<Attempt> {
    let details = serde_json::json!({ "settings": spec, "replicas": replicas });
    let no_replicas = Vec::new();
    let result = sqlx::query_as::<_, Declared>(DECLARE)
        .bind(actor.tenant_id)
        .bind(name)
        .bind(Json(spec))
        .bind(spec.dead_letter_exchange.as_deref())
        .bind(placement::QUEUE_GROUP_PREFIX)
        .bind(i32::from(spec.replication_factor))
        .bind(replicas.unwrap_or(&no_replicas))
        .bind(&actor.tenant)
        .bind(&actor.name)
        .bind(details)
        .bind(replicas.is_some())
        .fetch_optional(pool)
        .await;
    let row = match result {
        Ok(row) => row.ok_or_else(|| ApiError::not_found("tenant", actor.tenant.clone()))?,
        // The dead-letter exchange was deleted while this waited.
        Err(sqlx::Error::Database(err)) if err.is_foreign_key_violation() => {
            return Ok(Attempt::Again);
        }
        Err(err) => return Err(err.into()),
    };
    if let (Some(id), Some(settings), Some(version), Some(created_at)) = (
        row.existing_id,
        row.existing_settings,
        row.existing_version,
        row.existing_created_at,
    ) {
        let existing = NamedRow {
            id,
            name: name.to_string(),
            settings,
            version,
            created_at,
        };
        let existing = named::redeclare(QUEUES, name, existing, spec)?;
        return Ok(Attempt::Done(Box::new((false, existing.into()))));
    }
    if row.used >= row.max_queues {
        return Err(ApiError::QuotaExceeded {
            quota: "max_queues",
            limit: row.max_queues,
            used: row.used,
        });
    }
    if replicas.is_none() {
        return Ok(Attempt::NoRoom);
    }
    if let Some(dlx) = spec.dead_letter_exchange.as_deref()
        && !row.dlx_found
    {
        return Err(ApiError::validation(
            "dead_letter_exchange",
            "must-exist",
            format!("exchange `{dlx}` does not exist"),
        ));
    }
    match (
        row.new_id,
        row.new_settings,
        row.new_version,
        row.new_created_at,
    ) {
        (Some(id), Some(settings), Some(version), Some(created_at)) => {
            let created = NamedRow {
                id,
                name: name.to_string(),
                settings,
                version,
                created_at,
            };
            Ok(Attempt::Done(Box::new((true, created.into()))))
        }
        _ => Ok(Attempt::Again),
    }
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

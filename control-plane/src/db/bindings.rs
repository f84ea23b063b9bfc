//! Binding rows. A binding's id is derived from what it matches, so the
//! same binding declared twice lands on the same row.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::types::Json;

use super::mutation::{Actor, Mutation};
use super::named::{self, QUEUES};
use crate::error::{ApiError, ApiResult};
use crate::model::binding::{self, Binding, BindingId, BindingSpec, DestinationType};
use crate::model::common::differences;
use crate::model::queue::QueueSettings;
use crate::names;

#[derive(sqlx::FromRow)]
struct BindingRow {
    id: String,
    settings: Json<BindingSpec>,
    version: i64,
    created_at: DateTime<Utc>,
}

impl From<BindingRow> for Binding {
    fn from(row: BindingRow) -> Self {
        Binding {
            id: row.id,
            spec: row.settings.0,
            topology_version: row.version,
            created_at: row.created_at,
        }
    }
}

const COLUMNS: &str = "id, settings, version, created_at";

/// Filters of `GET /v1/bindings`.
#[derive(Debug, Default)]
pub struct BindingFilter<'a> {
    pub source: Option<&'a str>,
    pub destination: Option<&'a str>,
}

pub async fn list(
    pool: &PgPool,
    tenant_id: i64,
    filter: &BindingFilter<'_>,
    after: Option<&str>,
    limit: u32,
) -> ApiResult<Vec<Binding>> {
    let rows: Vec<BindingRow> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM bindings WHERE tenant_id = $1
           AND ($2::text IS NULL OR settings->>'source' = $2)
           AND ($3::text IS NULL OR settings->>'destination' = $3)
           AND ($4::text IS NULL OR id > $4)
         ORDER BY id LIMIT $5"
    ))
    .bind(tenant_id)
    .bind(filter.source)
    .bind(filter.destination)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Binding::from).collect())
}

pub async fn get(pool: &PgPool, tenant_id: i64, id: &str) -> ApiResult<Binding> {
    let row: Option<BindingRow> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM bindings WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(Binding::from)
        .ok_or_else(|| ApiError::not_found("binding", id))
}

/// Creates the binding, or confirms an identical one (`Ok((false, _))`).
pub async fn declare(
    pool: &PgPool,
    actor: &Actor,
    spec: BindingSpec,
) -> ApiResult<(bool, Binding)> {
    if spec.source == names::DEFAULT_EXCHANGE {
        return Err(ApiError::validation(
            "source",
            "reserved",
            "the default exchange binds every queue by its name; it takes no explicit bindings",
        ));
    }
    let mut m = Mutation::begin(pool, actor).await?;
    let source =
        super::exchanges::resolve_reference(&mut m.tx, actor.tenant_id, "source", &spec.source)
            .await?;
    let spec = binding::normalize(spec, source.settings.0.kind)?;
    let (queue_id, exchange_id) = match spec.destination_type {
        DestinationType::Queue => {
            let queue =
                named::find::<QueueSettings>(&mut m.tx, QUEUES, actor.tenant_id, &spec.destination)
                    .await?
                    .ok_or_else(|| {
                        ApiError::validation(
                            "destination",
                            "must-exist",
                            format!("queue `{}` does not exist", spec.destination),
                        )
                    })?;
            (Some(queue.id), None)
        }
        DestinationType::Exchange => {
            let exchange = super::exchanges::resolve_reference(
                &mut m.tx,
                actor.tenant_id,
                "destination",
                &spec.destination,
            )
            .await?;
            (None, Some(exchange.id))
        }
    };
    let id = spec.id();
    let existing: Option<BindingRow> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM bindings WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(actor.tenant_id)
    .bind(&id)
    .fetch_optional(&mut *m.tx)
    .await?;
    if let Some(existing) = existing {
        let diffs = differences(&existing.settings.0, &spec);
        if diffs.is_empty() {
            return Ok((false, existing.into()));
        }
        return Err(ApiError::Conflict {
            kind: "binding",
            name: id,
            differences: diffs,
        });
    }
    let usage = super::quotas::usage(&mut m.tx, actor.tenant_id).await?;
    m.ensure_quota("max_bindings", m.quotas.max_bindings, usage.bindings, 1)?;
    let version = m.bump("binding", &id, "declare").await?;
    let row: BindingRow = sqlx::query_as(sql!(
        "INSERT INTO bindings (id, tenant_id, source_exchange_id, destination_queue_id, destination_exchange_id, settings, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(&id)
    .bind(actor.tenant_id)
    .bind(source.id)
    .bind(queue_id)
    .bind(exchange_id)
    .bind(Json(&spec))
    .bind(version)
    .fetch_one(&mut *m.tx)
    .await?;
    m.commit(
        "binding.declare",
        &id,
        serde_json::to_value(&spec).unwrap_or_default(),
    )
    .await?;
    Ok((true, row.into()))
}

pub async fn delete(pool: &PgPool, actor: &Actor, id: &str) -> ApiResult<i64> {
    let mut m = Mutation::begin(pool, actor).await?;
    let deleted = sqlx::query("DELETE FROM bindings WHERE tenant_id = $1 AND id = $2")
        .bind(actor.tenant_id)
        .bind(id)
        .execute(&mut *m.tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found("binding", id));
    }
    m.bump("binding", id, "delete").await?;
    Ok(m.commit("binding.delete", id, serde_json::json!({}))
        .await?
        .unwrap_or_default())
}

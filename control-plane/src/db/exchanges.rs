//! Exchange rows.

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use super::mutation::{Actor, Mutation};
use super::named::{self, EXCHANGES, NamedRow};
use crate::error::{ApiError, ApiResult};
use crate::model::exchange::{Exchange, ExchangeSpec};

impl From<NamedRow<ExchangeSpec>> for Exchange {
    fn from(row: NamedRow<ExchangeSpec>) -> Self {
        Exchange {
            name: row.name,
            spec: row.settings.0,
            topology_version: row.version,
            created_at: row.created_at,
        }
    }
}

/// Resolves an exchange named in a request body (`field`); a missing one is
/// the client's mistake in that field.
pub async fn resolve_reference(
    conn: &mut PgConnection,
    tenant_id: i64,
    field: &str,
    name: &str,
) -> ApiResult<NamedRow<ExchangeSpec>> {
    named::find(conn, EXCHANGES, tenant_id, name)
        .await?
        .ok_or_else(|| {
            ApiError::validation(
                field,
                "must-exist",
                format!("exchange `{name}` does not exist"),
            )
        })
}

pub async fn get(pool: &PgPool, tenant_id: i64, name: &str) -> ApiResult<Exchange> {
    Ok(named::get::<ExchangeSpec>(pool, EXCHANGES, tenant_id, name)
        .await?
        .into())
}

pub async fn list(
    pool: &PgPool,
    tenant_id: i64,
    after: Option<&str>,
    limit: u32,
) -> ApiResult<Vec<Exchange>> {
    let rows = named::list::<ExchangeSpec>(pool, EXCHANGES, tenant_id, after, limit).await?;
    Ok(rows.into_iter().map(Exchange::from).collect())
}

/// Creates the exchange, or confirms an identical one (`Ok((false, _))`).
pub async fn declare(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    spec: ExchangeSpec,
) -> ApiResult<(bool, Exchange)> {
    let mut m = Mutation::begin(pool, actor).await?;
    if let Some(existing) = named::find(&mut m.tx, EXCHANGES, actor.tenant_id, name).await? {
        return Ok((
            false,
            named::redeclare(EXCHANGES, name, existing, &spec)?.into(),
        ));
    }
    let usage = super::quotas::usage(&mut m.tx, actor.tenant_id).await?;
    m.ensure_quota("max_exchanges", m.quotas.max_exchanges, usage.exchanges, 1)?;
    let alternate_id = match &spec.alternate_exchange {
        Some(ae) => Some(
            resolve_reference(&mut m.tx, actor.tenant_id, "alternate_exchange", ae)
                .await?
                .id,
        ),
        None => None,
    };
    let version = m.bump(EXCHANGES.kind, name, "declare").await?;
    let row: NamedRow<ExchangeSpec> = sqlx::query_as(
        "INSERT INTO exchanges (tenant_id, name, settings, alternate_exchange_id, version)
         VALUES ($1, $2, $3, $4, $5) RETURNING id, name, settings, version, created_at",
    )
    .bind(actor.tenant_id)
    .bind(name)
    .bind(Json(&spec))
    .bind(alternate_id)
    .bind(version)
    .fetch_one(&mut *m.tx)
    .await?;
    m.commit(
        "exchange.declare",
        name,
        serde_json::to_value(&spec).unwrap_or_default(),
    )
    .await?;
    Ok((true, row.into()))
}

/// Deletes the exchange and every binding from or to it. Refuses while a
/// queue dead-letters to it or an exchange uses it as alternate (so no
/// message is silently lost), and with `if_unused` while bindings route from
/// it. Returns (bindings removed, topology version).
pub async fn delete(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    if_unused: bool,
) -> ApiResult<(i64, i64)> {
    let mut m = Mutation::begin(pool, actor).await?;
    let id = named::lock_for_delete(&mut m.tx, EXCHANGES, actor.tenant_id, name).await?;
    let referrers: Vec<(String,)> = sqlx::query_as(
        "SELECT 'queue `' || name || '` dead-letters to it' FROM queues WHERE dead_letter_exchange_id = $1
         UNION ALL
         SELECT 'exchange `' || name || '` uses it as alternate exchange' FROM exchanges WHERE alternate_exchange_id = $1
         ORDER BY 1",
    )
    .bind(id)
    .fetch_all(&mut *m.tx)
    .await?;
    if !referrers.is_empty() {
        let list: Vec<String> = referrers.into_iter().map(|(r,)| r).collect();
        return Err(ApiError::InUse(format!(
            "exchange `{name}` is still referenced: {}",
            list.join("; ")
        )));
    }
    if if_unused {
        let (bound,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM bindings WHERE source_exchange_id = $1")
                .bind(id)
                .fetch_one(&mut *m.tx)
                .await?;
        if bound > 0 {
            return Err(ApiError::InUse(format!(
                "exchange `{name}` has {bound} binding(s) and if_unused was set"
            )));
        }
    }
    let removed = sqlx::query(
        "DELETE FROM bindings WHERE source_exchange_id = $1 OR destination_exchange_id = $1",
    )
    .bind(id)
    .execute(&mut *m.tx)
    .await?
    .rows_affected() as i64;
    named::delete_row(&mut m.tx, EXCHANGES, id).await?;
    m.bump(EXCHANGES.kind, name, "delete").await?;
    let version = m
        .commit(
            "exchange.delete",
            name,
            serde_json::json!({ "bindings_removed": removed }),
        )
        .await?;
    Ok((removed, version.unwrap_or_default()))
}

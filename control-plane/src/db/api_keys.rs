//! API key rows: creation (the secret leaves only in the response), lookup
//! for authentication, listing and revocation.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::auth::TenantKey;
use crate::auth::api_key;
use crate::error::{ApiError, ApiResult};
use crate::model::api_key::{ApiKey, ApiKeyCreated, CreateApiKey, KeyStatus, Scope};

/// What authentication needs to know about a key.
#[derive(sqlx::FromRow)]
pub struct KeyRecord {
    pub id: String,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub tenant_status: String,
    pub scopes: Vec<String>,
    pub secret_hash: Vec<u8>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    /// Refuses revoked and expired keys (401) and keys of suspended tenants (403).
    pub fn check_usable(self, now: DateTime<Utc>) -> ApiResult<TenantKey> {
        if self.revoked_at.is_some() {
            return Err(ApiError::Unauthorized("API key revoked".into()));
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::Unauthorized("API key expired".into()));
        }
        if self.tenant_status != "active" {
            return Err(ApiError::TenantSuspended(self.tenant_name));
        }
        Ok(TenantKey {
            tenant_id: self.tenant_id,
            tenant: self.tenant_name,
            key_id: self.id,
            scopes: self.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        })
    }
}

pub async fn lookup(pool: &PgPool, id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.id, k.tenant_id, t.name AS tenant_name, t.status AS tenant_status, k.scopes,
                k.secret_hash, k.expires_at, k.revoked_at
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Records use at most once a minute per key, off the request path, so
/// authentication does not write on every request.
pub fn touch(pool: &PgPool, id: &str) {
    let pool = pool.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let result = sqlx::query(
            "UPDATE api_keys SET last_used_at = now()
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')",
        )
        .bind(&id)
        .execute(&pool)
        .await;
        if let Err(err) = result {
            tracing::warn!(key = %id, error = %err, "could not record key use");
        }
    });
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    scopes: Vec<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl KeyRow {
    fn into_api(self, now: DateTime<Utc>) -> ApiKey {
        let status = if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        };
        ApiKey {
            id: self.id,
            name: self.name,
            scopes: self.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            status,
            created_by: self.created_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        }
    }
}

const COLUMNS: &str =
    "id, name, scopes, created_by, created_at, expires_at, revoked_at, last_used_at";

/// Inserts a key; the caller has checked the key quota under the tenant lock.
pub async fn insert(
    conn: &mut PgConnection,
    tenant_id: i64,
    request: &CreateApiKey,
    created_by: &str,
) -> ApiResult<ApiKeyCreated> {
    let new_key = api_key::generate();
    let scopes: Vec<&str> = request.scopes.iter().map(|s| s.as_str()).collect();
    let row: KeyRow = sqlx::query_as(sql!(
        "INSERT INTO api_keys (id, tenant_id, name, scopes, secret_hash, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(&new_key.id)
    .bind(tenant_id)
    .bind(&request.name)
    .bind(&scopes)
    .bind(&new_key.secret_hash)
    .bind(created_by)
    .bind(request.expires_at)
    .fetch_one(conn)
    .await?;
    Ok(ApiKeyCreated {
        api_key: row.into_api(Utc::now()),
        key: new_key.credential,
    })
}

pub async fn list(
    pool: &PgPool,
    tenant_id: i64,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<ApiKey>, sqlx::Error> {
    let rows: Vec<KeyRow> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant_id)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    let now = Utc::now();
    Ok(rows.into_iter().map(|r| r.into_api(now)).collect())
}

pub async fn get(pool: &PgPool, tenant_id: i64, id: &str) -> ApiResult<ApiKey> {
    let row: Option<KeyRow> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| r.into_api(Utc::now()))
        .ok_or_else(|| ApiError::not_found("api key", id))
}

/// Revokes the key (idempotent: revoking twice keeps the first time).
pub async fn revoke(conn: &mut PgConnection, tenant_id: i64, id: &str) -> ApiResult<ApiKey> {
    let row: Option<KeyRow> = sqlx::query_as(sql!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| r.into_api(Utc::now()))
        .ok_or_else(|| ApiError::not_found("api key", id))
}

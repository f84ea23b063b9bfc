//! Tenants (operator), their quotas, API keys and tokens.

use serde::{Deserialize, Serialize};

use super::{Deleted, Page, PageRequest};
use crate::call::Call;
use crate::client::Client;
use crate::path::Path;
use reqwest::Method;

/// A tenant's plan: the defaults of its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Standard,
    Enterprise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

/// `POST /v1/tenants` (operator).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    /// Default `free`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

impl CreateTenant {
    pub fn new(name: impl Into<String>) -> CreateTenant {
        CreateTenant {
            name: name.into(),
            plan: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    pub plan: Plan,
    pub status: TenantStatus,
    pub created_at: String,
}

/// A new tenant and the admin key made with it (its secret shown only here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantCreated {
    pub tenant: Tenant,
    pub admin_key: ApiKeyCreated,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Admin,
    Manage,
    Publish,
    Consume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

/// `POST /v1/api-keys` (admin).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl CreateApiKey {
    pub fn new(name: impl Into<String>, scopes: &[Scope]) -> CreateApiKey {
        CreateApiKey {
            name: name.into(),
            scopes: scopes.to_vec(),
            expires_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub status: KeyStatus,
    pub created_by: String,
    pub created_at: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
}

/// A new key with its secret `sk_<id>_<secret>`, shown only in this answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub api_key: ApiKey,
    pub key: String,
}

/// A short-lived JWT (`POST /v1/tokens`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub token: String,
    pub token_type: String,
    pub expires_at: String,
    pub scopes: Vec<Scope>,
}

/// A tenant's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    pub max_queues: i64,
    pub max_exchanges: i64,
    pub max_bindings: i64,
    pub max_streams: i64,
    pub max_partitions: i64,
    pub max_api_keys: i64,
    pub max_message_bytes: i64,
    pub publish_messages_per_second: i64,
    pub publish_bytes_per_second: i64,
    pub max_storage_bytes: i64,
}

/// `PATCH /v1/tenants/{t}/quotas` (operator): the limits to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queues: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exchanges: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bindings: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_partitions: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_api_keys: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_messages_per_second: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_bytes_per_second: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage_bytes: Option<i64>,
}

/// What a tenant uses of its quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub queues: i64,
    pub exchanges: i64,
    pub bindings: i64,
    pub streams: i64,
    pub partitions: i64,
    pub api_keys: i64,
    pub storage_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaReport {
    pub tenant: String,
    pub plan: Plan,
    pub limits: Quotas,
    pub usage: Usage,
}

fn tenant_path(tenant: &str) -> Path {
    Path::new("/v1/tenants").seg(tenant)
}

impl Client {
    /// `POST /v1/tenants` (operator): not retried on 503 (a repeat would be 409).
    pub fn create_tenant(&self, tenant: &CreateTenant) -> Call<TenantCreated> {
        Call::new(self, Method::POST, "/v1/tenants".into()).json(tenant)
    }

    /// `GET /v1/tenants` (operator).
    pub fn list_tenants(&self, page: &PageRequest) -> Call<Page<Tenant>> {
        let path = Path::new("/v1/tenants").page(page).finish();
        Call::new(self, Method::GET, path)
    }

    /// `GET /v1/tenants/{t}`.
    pub fn tenant(&self, tenant: &str) -> Call<Tenant> {
        Call::new(self, Method::GET, tenant_path(tenant).finish())
    }

    /// `DELETE /v1/tenants/{t}` (operator).
    pub fn delete_tenant(&self, tenant: &str) -> Call<Deleted> {
        Call::new(self, Method::DELETE, tenant_path(tenant).finish())
    }

    /// `POST /v1/tenants/{t}/suspend` (operator): its keys stop working.
    pub fn suspend_tenant(&self, tenant: &str) -> Call<Tenant> {
        let path = tenant_path(tenant).lit("suspend").finish();
        Call::new(self, Method::POST, path).retry_unavailable(true)
    }

    /// `POST /v1/tenants/{t}/resume` (operator).
    pub fn resume_tenant(&self, tenant: &str) -> Call<Tenant> {
        let path = tenant_path(tenant).lit("resume").finish();
        Call::new(self, Method::POST, path).retry_unavailable(true)
    }

    /// `GET /v1/tenants/{t}/quotas`: limits and usage.
    pub fn quotas(&self, tenant: &str) -> Call<QuotaReport> {
        Call::new(
            self,
            Method::GET,
            tenant_path(tenant).lit("quotas").finish(),
        )
    }

    /// `PATCH /v1/tenants/{t}/quotas` (operator): setting limits is idempotent.
    pub fn set_quotas(&self, tenant: &str, patch: &QuotasPatch) -> Call<QuotaReport> {
        let path = tenant_path(tenant).lit("quotas").finish();
        Call::new(self, Method::PATCH, path)
            .json(patch)
            .retry_unavailable(true)
    }

    /// `POST /v1/api-keys` (admin): the secret is in the answer only.
    pub fn create_api_key(&self, key: &CreateApiKey) -> Call<ApiKeyCreated> {
        Call::new(self, Method::POST, "/v1/api-keys".into()).json(key)
    }

    /// `GET /v1/api-keys`.
    pub fn list_api_keys(&self, page: &PageRequest) -> Call<Page<ApiKey>> {
        let path = Path::new("/v1/api-keys").page(page).finish();
        Call::new(self, Method::GET, path)
    }

    /// `GET /v1/api-keys/{id}`.
    pub fn api_key(&self, id: &str) -> Call<ApiKey> {
        Call::new(
            self,
            Method::GET,
            Path::new("/v1/api-keys").seg(id).finish(),
        )
    }

    /// `DELETE /v1/api-keys/{id}`: revokes the key.
    pub fn revoke_api_key(&self, id: &str) -> Call<ApiKey> {
        let path = Path::new("/v1/api-keys").seg(id).finish();
        Call::new(self, Method::DELETE, path)
    }

    /// `POST /v1/tokens`: a JWT for the calling key (`ttl_seconds` default
    /// per server); a token cannot mint another.
    pub fn create_token(&self, ttl_seconds: Option<u64>) -> Call<Token> {
        let path = Path::new("/v1/tokens")
            .query("ttl_seconds", ttl_seconds)
            .finish();
        Call::new(self, Method::POST, path)
    }
}

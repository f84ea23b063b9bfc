//! Tenants: the unit of isolation, billing and quotas.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_key::ApiKeyCreated;
use super::quota::Plan;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 2–63 characters from a-z 0-9 -, starting with a letter.
    pub name: String,
    #[serde(default)]
    pub plan: Plan,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    /// Every key of the tenant is refused until it is resumed.
    Suspended,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tenant {
    pub name: String,
    pub plan: Plan,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
}

/// A new tenant and its first admin key (whose secret is shown only here).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantCreated {
    pub tenant: Tenant,
    pub admin_key: ApiKeyCreated,
}

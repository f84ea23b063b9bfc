//! API keys: `sk_<key id>_<secret>`, scoped, expiring, revocable.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::names;

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Manage the tenant's keys, read its quotas and audit log; implies `manage`.
    Admin,
    /// Declare and delete exchanges, queues, bindings and streams.
    Manage,
    /// Publish messages and produce records (data plane).
    Publish,
    /// Receive, ack and fetch (data plane).
    Consume,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Manage => "manage",
            Scope::Publish => "publish",
            Scope::Consume => "consume",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "admin" => Some(Scope::Admin),
            "manage" => Some(Scope::Manage),
            "publish" => Some(Scope::Publish),
            "consume" => Some(Scope::Consume),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// 1–64 printable characters, for people to tell keys apart.
    pub name: String,
    /// At least one of `admin`, `manage`, `publish`, `consume`.
    pub scopes: Vec<Scope>,
    /// When the key stops working (must be in the future).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl CreateApiKey {
    pub fn validate(&mut self, now: DateTime<Utc>) -> Result<(), ApiError> {
        names::label("name", &self.name)?;
        if self.scopes.is_empty() {
            return Err(ApiError::validation(
                "scopes",
                "required",
                "at least one scope is required",
            ));
        }
        self.scopes.sort();
        self.scopes.dedup();
        if let Some(at) = self.expires_at
            && at <= now
        {
            return Err(ApiError::validation(
                "expires_at",
                "future",
                "must be in the future",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub status: KeyStatus,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A newly created key. `key` is the full secret and is never shown again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The credential: send it as `Authorization: Bearer <key>`.
    pub key: String,
}

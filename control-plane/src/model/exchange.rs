//! Exchanges: where publishes go and how they are routed to queues.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::names;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ExchangeType {
    /// Routing key equals the binding key.
    Direct,
    /// Every bound queue gets a copy; routing keys are ignored.
    Fanout,
    /// Dot-separated words; binding keys use `*` (one word) and `#` (zero or more).
    Topic,
    /// Matches message headers against the binding's headers (`all` or `any`).
    Headers,
    /// Hashes the routing key (or `hash_header`) onto bindings in proportion to their weight.
    ConsistentHash,
}

/// Settings of an exchange, as declared with `PUT /v1/exchanges/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSpec {
    #[serde(rename = "type")]
    pub kind: ExchangeType,
    /// Survives broker restarts (default true).
    #[serde(default = "default_true")]
    pub durable: bool,
    /// Internal exchanges accept no direct publishes, only exchange-to-exchange routing.
    #[serde(default)]
    pub internal: bool,
    /// Exchange that receives messages no binding matched. Must exist.
    #[serde(default)]
    pub alternate_exchange: Option<String>,
    /// `consistent-hash` only: hash this header's value instead of the routing key.
    #[serde(default)]
    pub hash_header: Option<String>,
}

fn default_true() -> bool {
    true
}

impl ExchangeSpec {
    pub fn validate(&self, name: &str) -> Result<(), ApiError> {
        if let Some(ae) = &self.alternate_exchange {
            names::resource("alternate_exchange", ae)?;
            if ae == name {
                return Err(ApiError::validation(
                    "alternate_exchange",
                    "not-self",
                    "an exchange cannot be its own alternate exchange",
                ));
            }
        }
        if let Some(header) = &self.hash_header {
            if self.kind != ExchangeType::ConsistentHash {
                return Err(ApiError::validation(
                    "hash_header",
                    "exchange-type",
                    "only valid for type consistent-hash",
                ));
            }
            if header.is_empty() || header.len() > 255 {
                return Err(ApiError::validation(
                    "hash_header",
                    "length",
                    "must be 1 to 255 bytes",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Exchange {
    pub name: String,
    #[serde(flatten)]
    pub spec: ExchangeSpec,
    /// Topology version at which this exchange was last changed.
    pub topology_version: i64,
    pub created_at: DateTime<Utc>,
}

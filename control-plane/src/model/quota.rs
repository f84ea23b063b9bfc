//! Per-tenant quotas: plan defaults, operator overrides and current usage.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Standard,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Standard => "standard",
            Plan::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        match s {
            "free" => Some(Plan::Free),
            "standard" => Some(Plan::Standard),
            "enterprise" => Some(Plan::Enterprise),
            _ => None,
        }
    }

    /// The limits a new tenant on this plan starts with.
    ///
    /// Queues and partitions are groups, and a broker hosts up to
    /// `max_groups` of them (100,000 by default; an idle one sleeps and
    /// costs a few KB of memory and no file or task): an enterprise
    /// tenant at its full 10,000 queues and 10,000 partitions fills a fifth
    /// of one broker, a thousand free tenants at theirs about a fifth.
    /// Placement refuses (`capacity-exhausted`) before a broker is over.
    pub fn defaults(self) -> Quotas {
        const KIB: i64 = 1 << 10;
        const MIB: i64 = 1 << 20;
        const GIB: i64 = 1 << 30;
        match self {
            Plan::Free => Quotas {
                max_queues: 10,
                max_exchanges: 10,
                max_bindings: 50,
                max_streams: 2,
                max_partitions: 8,
                max_api_keys: 5,
                max_message_bytes: 256 * KIB,
                publish_messages_per_second: 100,
                publish_bytes_per_second: MIB,
                max_storage_bytes: GIB,
            },
            Plan::Standard => Quotas {
                max_queues: 1_000,
                max_exchanges: 1_000,
                max_bindings: 10_000,
                max_streams: 100,
                max_partitions: 1_000,
                max_api_keys: 50,
                max_message_bytes: MIB,
                publish_messages_per_second: 10_000,
                publish_bytes_per_second: 100 * MIB,
                max_storage_bytes: 100 * GIB,
            },
            Plan::Enterprise => Quotas {
                max_queues: 10_000,
                max_exchanges: 10_000,
                max_bindings: 100_000,
                max_streams: 1_000,
                max_partitions: 10_000,
                max_api_keys: 500,
                max_message_bytes: 16 * MIB,
                publish_messages_per_second: 100_000,
                publish_bytes_per_second: GIB,
                max_storage_bytes: 10_240 * GIB,
            },
        }
    }
}

// One type for the API and the topology feed, which carries it to brokers.
pub use sluice_protocol::feed::Quotas;

/// Operator change to a tenant's quotas: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotasPatch {
    pub max_queues: Option<i64>,
    pub max_exchanges: Option<i64>,
    pub max_bindings: Option<i64>,
    pub max_streams: Option<i64>,
    pub max_partitions: Option<i64>,
    pub max_api_keys: Option<i64>,
    pub max_message_bytes: Option<i64>,
    pub publish_messages_per_second: Option<i64>,
    pub publish_bytes_per_second: Option<i64>,
    pub max_storage_bytes: Option<i64>,
}

impl QuotasPatch {
    /// Applies the patch, checking each given value. Counts may be 0 (nothing
    /// allowed); sizes and rates must be at least 1.
    pub fn apply(&self, mut q: Quotas) -> Result<Quotas, ApiError> {
        fn set(field: &str, slot: &mut i64, value: Option<i64>, min: i64) -> Result<(), ApiError> {
            if let Some(v) = value {
                if v < min {
                    return Err(ApiError::validation(
                        field,
                        "range",
                        format!("must be at least {min}"),
                    ));
                }
                *slot = v;
            }
            Ok(())
        }
        set("max_queues", &mut q.max_queues, self.max_queues, 0)?;
        set("max_exchanges", &mut q.max_exchanges, self.max_exchanges, 0)?;
        set("max_bindings", &mut q.max_bindings, self.max_bindings, 0)?;
        set("max_streams", &mut q.max_streams, self.max_streams, 0)?;
        set(
            "max_partitions",
            &mut q.max_partitions,
            self.max_partitions,
            0,
        )?;
        set("max_api_keys", &mut q.max_api_keys, self.max_api_keys, 0)?;
        set(
            "max_message_bytes",
            &mut q.max_message_bytes,
            self.max_message_bytes,
            1,
        )?;
        set(
            "publish_messages_per_second",
            &mut q.publish_messages_per_second,
            self.publish_messages_per_second,
            1,
        )?;
        set(
            "publish_bytes_per_second",
            &mut q.publish_bytes_per_second,
            self.publish_bytes_per_second,
            1,
        )?;
        set(
            "max_storage_bytes",
            &mut q.max_storage_bytes,
            self.max_storage_bytes,
            1,
        )?;
        Ok(q)
    }
}

/// What a tenant currently uses of its quotas.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Usage {
    pub queues: i64,
    pub exchanges: i64,
    pub bindings: i64,
    pub streams: i64,
    pub partitions: i64,
    pub api_keys: i64,
    /// Bytes stored, against `max_storage_bytes`: the sum of what the live
    /// brokers (heartbeat within the last 15 s) last reported for this
    /// tenant, so it trails the truth by up to a heartbeat interval.
    pub storage_bytes: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaReport {
    pub tenant: String,
    pub plan: Plan,
    pub limits: Quotas,
    pub usage: Usage,
}

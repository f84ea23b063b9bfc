//! Streams: partitioned, replayable logs (Kafka semantics).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::common::{DAY_MS, check_range, check_replication_factor};
use crate::error::ApiError;

pub const MAX_PARTITIONS: u64 = 1024;

/// The shortest time retention (like Kafka, short windows are allowed:
/// scratch streams, tests); retention runs every couple of seconds.
const MIN_RETENTION_MS: u64 = 1_000;

/// Settings of a stream, as declared with `PUT /v1/streams/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// Number of partitions, 1 to 1024.
    #[serde(default = "one")]
    pub partitions: u32,
    /// Replicas per partition: 1 today (3, 5 or 7 once brokers replicate).
    #[serde(default = "one_u8")]
    pub replication_factor: u8,
    /// Records older than this are deleted (at least 1 s, default 7 days; `null` keeps them forever).
    #[serde(default = "seven_days")]
    pub retention_ms: Option<u64>,
    /// Per partition: oldest segments are deleted beyond this size (default: no limit).
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Kept on broker disks this long; older segments are served from object storage.
    #[serde(default)]
    pub local_retention_ms: Option<u64>,
    /// Per partition, kept on broker disks up to this size; the rest from object storage.
    #[serde(default)]
    pub local_retention_bytes: Option<u64>,
    /// Largest record accepted, at most the tenant's `max_message_bytes` quota.
    /// Absent (`null`): the quota itself, whatever it is when a record arrives.
    #[serde(default)]
    pub max_message_bytes: Option<u64>,
}

fn one() -> u32 {
    1
}
fn one_u8() -> u8 {
    1
}
fn seven_days() -> Option<u64> {
    Some(7 * DAY_MS)
}

impl StreamSpec {
    /// `max_message_bytes` is the tenant's quota, checked here so the error names the field.
    pub fn validate(&self, max_message_bytes: i64) -> Result<(), ApiError> {
        check_range(
            "partitions",
            Some(u64::from(self.partitions)),
            1,
            MAX_PARTITIONS,
        )?;
        check_replication_factor(self.replication_factor)?;
        check_range(
            "retention_ms",
            self.retention_ms,
            MIN_RETENTION_MS,
            100 * 365 * DAY_MS,
        )?;
        check_range(
            "retention_bytes",
            self.retention_bytes,
            1 << 20,
            i64::MAX as u64,
        )?;
        check_range(
            "local_retention_ms",
            self.local_retention_ms,
            MIN_RETENTION_MS,
            100 * 365 * DAY_MS,
        )?;
        check_range(
            "local_retention_bytes",
            self.local_retention_bytes,
            1 << 20,
            i64::MAX as u64,
        )?;
        let quota = max_message_bytes.max(1) as u64;
        check_range("max_message_bytes", self.max_message_bytes, 1, quota)?;
        if let (Some(local), Some(total)) = (self.local_retention_ms, self.retention_ms)
            && local > total
        {
            return Err(ApiError::validation(
                "local_retention_ms",
                "range",
                "must not exceed retention_ms",
            ));
        }
        if let (Some(local), Some(total)) = (self.local_retention_bytes, self.retention_bytes)
            && local > total
        {
            return Err(ApiError::validation(
                "local_retention_bytes",
                "range",
                "must not exceed retention_bytes",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stream {
    pub name: String,
    #[serde(flatten)]
    pub spec: StreamSpec,
    /// Topology version at which this stream was last changed.
    pub topology_version: i64,
    pub created_at: DateTime<Utc>,
}

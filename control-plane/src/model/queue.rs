//! Queues: RabbitMQ quorum-queue semantics, declared with every setting a
//! work queue, a retry queue or a dead-letter queue needs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::common::{DAY_MS, check_range, check_replication_factor};
use crate::error::ApiError;
use crate::names;

/// What happens when a publish would exceed `max_length` or `max_length_bytes`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Drop (or dead-letter, when a dead-letter exchange is set) the oldest message.
    #[default]
    DropHead,
    /// Refuse the publish; the publisher is told which messages were not stored.
    RejectPublish,
    /// Refuse the publish and dead-letter the refused message.
    DeadLetter,
}

/// Delay before redelivering a nacked or expired-lease message:
/// `min(initial_delay_ms * multiplier^(delivery_count-1), max_delay_ms)`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryBackoff {
    pub initial_delay_ms: u64,
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    pub max_delay_ms: u64,
}

fn default_multiplier() -> f64 {
    2.0
}

/// Settings of a queue, as declared with `PUT /v1/queues/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// Messages older than this are dropped or dead-lettered (1 ms to 365 days).
    #[serde(default)]
    pub message_ttl_ms: Option<u64>,
    /// Most ready messages the queue holds.
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Most bytes of ready message bodies the queue holds.
    #[serde(default)]
    pub max_length_bytes: Option<u64>,
    #[serde(default)]
    pub overflow: Overflow,
    /// Exchange that receives expired, rejected and over-limit messages. Must exist.
    #[serde(default)]
    pub dead_letter_exchange: Option<String>,
    /// Routing key for dead letters (default: the message's own).
    #[serde(default)]
    pub dead_letter_routing_key: Option<String>,
    /// Deliveries after which a message is dead-lettered instead of redelivered (1 to 10,000).
    #[serde(default)]
    pub delivery_limit: Option<u32>,
    #[serde(default)]
    pub retry: Option<RetryBackoff>,
    /// A second publish with the same message id within this window is dropped (1 ms to 7 days).
    #[serde(default)]
    pub dedup_window_ms: Option<u64>,
    /// Number of replicas: 1 today (3, 5 and 7 — a majority holding every confirmed
    /// message — once brokers replicate to one another).
    #[serde(default = "default_replication")]
    pub replication_factor: u8,
    /// Only one consumer receives at a time; another takes over when it leaves.
    #[serde(default)]
    pub single_active_consumer: bool,
    /// Messages with the same group key are delivered one at a time, in order.
    #[serde(default)]
    pub message_groups: bool,
    /// Default lease (visibility timeout) of a received message (1 s to 12 h).
    #[serde(default = "default_lease")]
    pub lease_ms: u64,
}

fn default_replication() -> u8 {
    1
}

fn default_lease() -> u64 {
    30_000
}

impl QueueSpec {
    pub fn validate(&self) -> Result<(), ApiError> {
        check_range("message_ttl_ms", self.message_ttl_ms, 1, 365 * DAY_MS)?;
        check_range("max_length", self.max_length, 1, i64::MAX as u64)?;
        check_range(
            "max_length_bytes",
            self.max_length_bytes,
            1,
            i64::MAX as u64,
        )?;
        check_range(
            "delivery_limit",
            self.delivery_limit.map(u64::from),
            1,
            10_000,
        )?;
        check_range("dedup_window_ms", self.dedup_window_ms, 1, 7 * DAY_MS)?;
        check_range("lease_ms", Some(self.lease_ms), 1_000, DAY_MS / 2)?;
        check_replication_factor(self.replication_factor)?;
        if let Some(dlx) = &self.dead_letter_exchange {
            names::resource("dead_letter_exchange", dlx)?;
        }
        if let Some(key) = &self.dead_letter_routing_key {
            if self.dead_letter_exchange.is_none() {
                return Err(ApiError::validation(
                    "dead_letter_routing_key",
                    "requires",
                    "requires dead_letter_exchange",
                ));
            }
            if key.len() > 255 {
                return Err(ApiError::validation(
                    "dead_letter_routing_key",
                    "length",
                    "must be at most 255 bytes",
                ));
            }
        }
        if self.overflow == Overflow::DeadLetter && self.dead_letter_exchange.is_none() {
            return Err(ApiError::validation(
                "overflow",
                "requires",
                "overflow dead-letter requires dead_letter_exchange",
            ));
        }
        if let Some(retry) = &self.retry {
            check_range(
                "retry.initial_delay_ms",
                Some(retry.initial_delay_ms),
                1,
                DAY_MS,
            )?;
            check_range(
                "retry.max_delay_ms",
                Some(retry.max_delay_ms),
                1,
                7 * DAY_MS,
            )?;
            if !(1.0..=10.0).contains(&retry.multiplier) {
                return Err(ApiError::validation(
                    "retry.multiplier",
                    "range",
                    "must be between 1.0 and 10.0",
                ));
            }
            if retry.max_delay_ms < retry.initial_delay_ms {
                return Err(ApiError::validation(
                    "retry.max_delay_ms",
                    "range",
                    "must be at least retry.initial_delay_ms",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Queue {
    pub name: String,
    #[serde(flatten)]
    pub spec: QueueSpec,
    /// Topology version at which this queue was last changed.
    pub topology_version: i64,
    pub created_at: DateTime<Utc>,
    /// Live counts from the broker hosting the queue (on reads, when it answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<crate::brokers::QueueStats>,
}

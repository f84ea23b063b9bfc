//! Queue settings: the one type the control plane validates, stores and
//! sends in its topology feed (`QueueSpec` in its API) and the state machine
//! runs on, the rules a declared queue must keep ([`QueueSettings::validate`]),
//! and the retry backoff arithmetic that must give the same answer on every
//! replica.

use serde::{Deserialize, Serialize};

use crate::error::InvalidSetting;

/// What happens when a publish would exceed `max_length` or `max_length_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Drop (or dead-letter, when a dead-letter exchange is set) the oldest
    /// ready message(s) to make room.
    #[default]
    DropHead,
    /// Refuse the new message; the publisher is told it was not stored.
    RejectPublish,
    /// Refuse the new message and dead-letter it.
    DeadLetter,
}

/// Delay before redelivering a nacked or expired-lease message:
/// `min(initial_delay_ms * multiplier^(delivery_count-1), max_delay_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryBackoff {
    pub initial_delay_ms: u64,
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    pub max_delay_ms: u64,
}

fn default_multiplier() -> f64 {
    2.0
}

impl RetryBackoff {
    /// Checks the delays' ranges and a multiplier from 1 to 10 (fields named
    /// as inside a queue's settings: `retry.…`).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        in_range(
            "retry.initial_delay_ms",
            Some(self.initial_delay_ms),
            1,
            DAY_MS,
        )?;
        in_range("retry.max_delay_ms", Some(self.max_delay_ms), 1, 7 * DAY_MS)?;
        if !(1.0..=10.0).contains(&self.multiplier) {
            return Err(InvalidSetting::new(
                "retry.multiplier",
                "range",
                "must be between 1.0 and 10.0",
            ));
        }
        if self.max_delay_ms < self.initial_delay_ms {
            return Err(InvalidSetting::new(
                "retry.max_delay_ms",
                "range",
                "must be at least retry.initial_delay_ms",
            ));
        }
        Ok(())
    }

    /// The delay after the `delivery_count`-th delivery failed.
    ///
    /// Every replica must compute the same number, so this avoids `f64::powf`
    /// (libm's `pow` differs between platforms) and exponentiates by squaring
    /// with plain IEEE-754 multiplications, which are correctly rounded
    /// everywhere. A multiplier below 1 or NaN counts as 1.
    pub fn delay_ms(&self, delivery_count: u32) -> u64 {
        let max = self.max_delay_ms;
        let initial = self.initial_delay_ms.min(max);
        if initial == 0 {
            return 0;
        }
        let multiplier = if self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let mut factor = 1.0_f64;
        let mut base = multiplier;
        let mut exponent = delivery_count.saturating_sub(1);
        while exponent > 0 {
            if exponent & 1 == 1 {
                factor *= base;
            }
            base *= base;
            exponent >>= 1;
        }
        let delay = initial as f64 * factor;
        // Infinity and NaN (an overflowed factor) land on the cap too.
        if delay.is_finite() && delay < max as f64 {
            delay as u64
        } else {
            max
        }
    }
}

// The control plane validates ([`QueueSettings::validate`]), stores and
// returns this type, and the topology feed carries it to the brokers. Unknown
// fields are ignored when reading it, so the control plane can add a setting
// before every broker understands it; the control plane refuses unknown
// fields on its own input. Every field is serialised (no
// `skip_serializing_if`): that is how the control plane tells an unknown
// field from a known one. The doc comments are the published API's
// descriptions (`openapi/control-plane.json`, schema `QueueSpec`).
/// Settings of a queue, as declared with `PUT /v1/queues/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = QueueSpec))]
pub struct QueueSettings {
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
    // Carried for the broker's placement; the state machine does not use it.
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

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            message_ttl_ms: None,
            max_length: None,
            max_length_bytes: None,
            overflow: Overflow::DropHead,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
            delivery_limit: None,
            retry: None,
            dedup_window_ms: None,
            replication_factor: default_replication(),
            single_active_consumer: false,
            message_groups: false,
            lease_ms: default_lease(),
        }
    }
}

/// One day in milliseconds, the unit of the settings' upper bounds.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl QueueSettings {
    /// Checks what the types cannot say: every setting within its range and
    /// the settings that need another one (a dead-letter routing key or a
    /// dead-letter overflow need a dead-letter exchange). Whether the
    /// dead-letter exchange exists, and its name's charset, are the control
    /// plane's to check.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        in_range("message_ttl_ms", self.message_ttl_ms, 1, 365 * DAY_MS)?;
        in_range("max_length", self.max_length, 1, i64::MAX as u64)?;
        in_range(
            "max_length_bytes",
            self.max_length_bytes,
            1,
            i64::MAX as u64,
        )?;
        in_range(
            "delivery_limit",
            self.delivery_limit.map(u64::from),
            1,
            10_000,
        )?;
        in_range("dedup_window_ms", self.dedup_window_ms, 1, 7 * DAY_MS)?;
        in_range("lease_ms", Some(self.lease_ms), 1_000, DAY_MS / 2)?;
        replication_factor_served(self.replication_factor)?;
        if let Some(key) = &self.dead_letter_routing_key {
            if self.dead_letter_exchange.is_none() {
                return Err(InvalidSetting::new(
                    "dead_letter_routing_key",
                    "requires",
                    "requires dead_letter_exchange",
                ));
            }
            if key.len() > 255 {
                return Err(InvalidSetting::new(
                    "dead_letter_routing_key",
                    "length",
                    "must be at most 255 bytes",
                ));
            }
        }
        if self.overflow == Overflow::DeadLetter && self.dead_letter_exchange.is_none() {
            return Err(InvalidSetting::new(
                "overflow",
                "requires",
                "overflow dead-letter requires dead_letter_exchange",
            ));
        }
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        Ok(())
    }

    /// Whether a message delivered `delivery_count` times may not be delivered again.
    pub(crate) fn delivery_limit_reached(&self, delivery_count: u32) -> bool {
        self.delivery_limit
            .is_some_and(|limit| delivery_count >= limit)
    }
}

/// Checks `min <= value <= max` for an optional setting.
fn in_range(field: &str, value: Option<u64>, min: u64, max: u64) -> Result<(), InvalidSetting> {
    match value {
        Some(v) if v < min || v > max => Err(InvalidSetting::new(
            field,
            "range",
            format!("must be between {min} and {max}"),
        )),
        _ => Ok(()),
    }
}

/// A replication factor is odd (1, 3, 5 or 7: a majority must hold every
/// confirmed message), and today 1 — brokers do not replicate groups to one
/// another yet, and a group placed on several brokers could not elect a
/// leader, so more is refused rather than accepted and left unserved.
fn replication_factor_served(replication_factor: u8) -> Result<(), InvalidSetting> {
    if !matches!(replication_factor, 1 | 3 | 5 | 7) {
        return Err(InvalidSetting::new(
            "replication_factor",
            "odd",
            "must be 1, 3, 5 or 7",
        ));
    }
    if replication_factor > 1 {
        return Err(InvalidSetting::new(
            "replication_factor",
            "available",
            "only 1 is served today: replication across brokers is not built yet",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_the_control_plane_spec_and_ignores_unknown_fields() {
        let json = r#"{
            "message_ttl_ms": 60000, "max_length": null, "max_length_bytes": 1024,
            "overflow": "reject-publish", "dead_letter_exchange": "dlx",
            "dead_letter_routing_key": null, "delivery_limit": 3,
            "retry": {"initial_delay_ms": 100, "multiplier": 2.0, "max_delay_ms": 1000},
            "dedup_window_ms": 5000, "replication_factor": 3,
            "single_active_consumer": false, "message_groups": true, "lease_ms": 30000,
            "some_future_setting": {"x": 1}
        }"#;
        let settings: QueueSettings = serde_json::from_str(json).unwrap();
        assert_eq!(settings.overflow, Overflow::RejectPublish);
        assert_eq!(settings.delivery_limit, Some(3));
        assert_eq!(settings.replication_factor, 3);
        assert!(settings.message_groups);
        let defaults: QueueSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(defaults, QueueSettings::default());
    }

    #[test]
    fn validation_names_the_field_and_rule() {
        assert_eq!(QueueSettings::default().validate(), Ok(()));
        let cases = [
            (r#"{"lease_ms": 10}"#, "lease_ms", "range"),
            (
                r#"{"replication_factor": 3}"#,
                "replication_factor",
                "available",
            ),
            (
                r#"{"dead_letter_routing_key": "k"}"#,
                "dead_letter_routing_key",
                "requires",
            ),
            (r#"{"overflow": "dead-letter"}"#, "overflow", "requires"),
            (
                r#"{"retry": {"initial_delay_ms": 1, "multiplier": 0.5, "max_delay_ms": 10}}"#,
                "retry.multiplier",
                "range",
            ),
        ];
        for (json, field, rule) in cases {
            let settings: QueueSettings = serde_json::from_str(json).expect(json);
            let invalid = settings.validate().expect_err(json);
            assert_eq!(
                (invalid.field.as_str(), invalid.rule),
                (field, rule),
                "{json}"
            );
        }
    }

    #[test]
    fn backoff_grows_geometrically_and_caps() {
        let retry = RetryBackoff {
            initial_delay_ms: 100,
            multiplier: 2.0,
            max_delay_ms: 1000,
        };
        let delays: Vec<u64> = (1..=6).map(|n| retry.delay_ms(n)).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(retry.delay_ms(0), 100);
        assert_eq!(retry.delay_ms(u32::MAX), 1000);
        let odd = RetryBackoff {
            initial_delay_ms: 1000,
            multiplier: 1.5,
            max_delay_ms: 10_000,
        };
        assert_eq!(odd.delay_ms(3), 2250);
        let nan = RetryBackoff {
            initial_delay_ms: 10,
            multiplier: f64::NAN,
            max_delay_ms: 100,
        };
        assert_eq!(nan.delay_ms(50), 10);
    }
}

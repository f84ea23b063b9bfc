//! Queue settings as the control plane declares them (its `QueueSpec` JSON),
//! and the retry backoff arithmetic that must give the same answer on every
//! replica.

use serde::{Deserialize, Serialize};

/// What happens when a publish would exceed `max_length` or `max_length_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Delay before redelivering a nacked (or lease-expired) message:
/// `min(initial_delay_ms * multiplier^(delivery_count-1), max_delay_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Settings of one queue. Unknown fields are ignored so that the control
/// plane can add settings before every broker understands them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSettings {
    /// Ready messages older than this are dead-lettered (or dropped).
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
    #[serde(default)]
    pub dead_letter_exchange: Option<String>,
    /// Routing key for dead letters (default: the message's own).
    #[serde(default)]
    pub dead_letter_routing_key: Option<String>,
    /// Deliveries after which a message is dead-lettered instead of redelivered.
    #[serde(default)]
    pub delivery_limit: Option<u32>,
    #[serde(default)]
    pub retry: Option<RetryBackoff>,
    /// A second publish with the same message id within this window is a duplicate.
    #[serde(default)]
    pub dedup_window_ms: Option<u64>,
    /// Carried for the broker; the state machine does not use it.
    #[serde(default = "default_replication")]
    pub replication_factor: u8,
    #[serde(default)]
    pub single_active_consumer: bool,
    #[serde(default)]
    pub message_groups: bool,
    /// Default lease (visibility timeout) of a received message.
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

impl QueueSettings {
    /// Whether a message delivered `delivery_count` times may not be delivered again.
    pub(crate) fn delivery_limit_reached(&self, delivery_count: u32) -> bool {
        self.delivery_limit
            .is_some_and(|limit| delivery_count >= limit)
    }
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

//! Per-tenant publish rate quotas: token buckets for messages/s and bytes/s,
//! refilled continuously, with one second of burst. A publish batch is
//! admitted whole or refused whole (429 with `Retry-After`), so nothing is
//! half-applied and nothing is dropped silently.
//!
//! The buckets are per broker: with N brokers a tenant could reach N times
//! its rate. Sharing the budget (the control plane splitting it by the
//! brokers' share of traffic) is for when there are several brokers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Over the rate now; the same batch fits after `retry_after`.
    Later { retry_after: Duration },
    /// The batch alone is bigger than one second of quota: it can never fit.
    TooLarge {
        what: &'static str,
        needed: u64,
        per_second: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    rate: f64,
}

impl Bucket {
    fn refill(&mut self, rate: f64, elapsed: Duration) {
        // A changed quota takes effect at once; the burst is one second's worth.
        self.rate = rate;
        self.tokens = (self.tokens + rate * elapsed.as_secs_f64()).min(rate);
    }

    fn wait_for(&self, needed: f64) -> Duration {
        if self.tokens >= needed {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((needed - self.tokens) / self.rate)
        }
    }
}

#[derive(Debug)]
struct TenantBuckets {
    messages: Bucket,
    bytes: Bucket,
    at: Instant,
}

#[derive(Default)]
pub struct PublishLimits {
    // A std mutex: the critical section is a few arithmetic operations and never awaits.
    tenants: Mutex<HashMap<i64, TenantBuckets>>,
}

impl PublishLimits {
    /// Takes `messages` and `bytes` from the tenant's buckets, or refuses the whole batch.
    pub fn admit(
        &self,
        tenant_id: i64,
        messages_per_s: i64,
        bytes_per_s: i64,
        messages: u64,
        bytes: u64,
    ) -> Result<(), Refusal> {
        self.admit_at(
            Instant::now(),
            tenant_id,
            messages_per_s,
            bytes_per_s,
            messages,
            bytes,
        )
    }

    fn admit_at(
        &self,
        now: Instant,
        tenant_id: i64,
        messages_per_s: i64,
        bytes_per_s: i64,
        messages: u64,
        bytes: u64,
    ) -> Result<(), Refusal> {
        let message_rate = messages_per_s.max(1) as f64;
        let byte_rate = bytes_per_s.max(1) as f64;
        if messages as f64 > message_rate {
            return Err(Refusal::TooLarge {
                what: "messages",
                needed: messages,
                per_second: message_rate as u64,
            });
        }
        if bytes as f64 > byte_rate {
            return Err(Refusal::TooLarge {
                what: "bytes",
                needed: bytes,
                per_second: byte_rate as u64,
            });
        }
        let Ok(mut tenants) = self.tenants.lock() else {
            // A panic elsewhere poisoned the map; admitting is safer than refusing everyone.
            return Ok(());
        };
        let entry = tenants.entry(tenant_id).or_insert(TenantBuckets {
            messages: Bucket {
                tokens: message_rate,
                rate: message_rate,
            },
            bytes: Bucket {
                tokens: byte_rate,
                rate: byte_rate,
            },
            at: now,
        });
        let elapsed = now.saturating_duration_since(entry.at);
        entry.at = now;
        entry.messages.refill(message_rate, elapsed);
        entry.bytes.refill(byte_rate, elapsed);
        let wait = entry
            .messages
            .wait_for(messages as f64)
            .max(entry.bytes.wait_for(bytes as f64));
        if wait > Duration::ZERO {
            return Err(Refusal::Later { retry_after: wait });
        }
        entry.messages.tokens -= messages as f64;
        entry.bytes.tokens -= bytes as f64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limits = PublishLimits::default();
        let start = Instant::now();
        assert!(
            limits.admit_at(start, 1, 10, 1_000_000, 10, 10).is_ok(),
            "one second of burst"
        );
        let refused = limits.admit_at(start, 1, 10, 1_000_000, 1, 1);
        let Err(Refusal::Later { retry_after }) = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        assert!(
            retry_after > Duration::from_millis(90) && retry_after <= Duration::from_millis(100)
        );
        assert!(
            limits
                .admit_at(start + Duration::from_millis(100), 1, 10, 1_000_000, 1, 1)
                .is_ok()
        );
    }

    #[test]
    fn tenants_do_not_share_buckets_and_bytes_count() {
        let limits = PublishLimits::default();
        let now = Instant::now();
        assert!(limits.admit_at(now, 1, 1000, 100, 1, 100).is_ok());
        assert!(matches!(
            limits.admit_at(now, 1, 1000, 100, 1, 1),
            Err(Refusal::Later { .. })
        ));
        assert!(limits.admit_at(now, 2, 1000, 100, 1, 100).is_ok());
    }

    #[test]
    fn a_batch_beyond_one_second_of_quota_never_fits() {
        let limits = PublishLimits::default();
        let refused = limits.admit_at(Instant::now(), 1, 10, 1000, 11, 1);
        assert_eq!(
            refused,
            Err(Refusal::TooLarge {
                what: "messages",
                needed: 11,
                per_second: 10
            })
        );
    }

    #[test]
    fn a_refused_batch_takes_nothing() {
        let limits = PublishLimits::default();
        let now = Instant::now();
        assert!(limits.admit_at(now, 1, 10, 1000, 6, 1).is_ok());
        assert!(limits.admit_at(now, 1, 10, 1000, 6, 1).is_err());
        assert!(
            limits.admit_at(now, 1, 10, 1000, 4, 1).is_ok(),
            "the refused 6 were not taken"
        );
    }
}

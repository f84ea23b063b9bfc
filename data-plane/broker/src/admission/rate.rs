//! Per-tenant publish rate quotas: token buckets for messages/s and bytes/s,
//! refilled continuously, with one second of burst. A publish batch is
//! admitted whole or refused whole (429 with `Retry-After`), so nothing is
//! half-applied and nothing is dropped silently.
//!
//! A tenant's quota holds for the whole cluster, and every broker takes
//! publishes: each broker's buckets refill at `rate / live brokers` (and hold
//! that share as burst), so N brokers together admit the tenant's rate, not
//! N times it. The live count is the control plane's (brokers whose
//! heartbeat is within its liveness window), learnt with every heartbeat.
//! A share never drops below a small floor, so a tenant with a tiny quota
//! split many ways still gets something through each broker (at worst the
//! cluster admits `brokers × floor`). A publish forwarded from another
//! broker was charged there and is not charged again (`api/forward.rs`).
//!
//! The split is even, not by traffic: a tenant whose clients all talk to one
//! broker gets that broker's share only. A batch bigger than the share but
//! within the tenant's one-second quota is still admitted when the bucket is
//! full, leaving it in debt that the refill repays before the next batch, so
//! the average stays at the share and a batch that fits the quota is never
//! refused forever.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The smallest per-broker share of a messages/s quota.
pub const MIN_MESSAGES_PER_SECOND: f64 = 1.0;
/// The smallest per-broker share of a bytes/s quota.
pub const MIN_BYTES_PER_SECOND: f64 = 1024.0;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Over the rate now; the same batch fits after `retry_after`.
    Later { retry_after: Duration },
    /// The batch alone is bigger than one second of the tenant's quota: it
    /// can never fit.
    TooLarge {
        what: &'static str,
        needed: u64,
        per_second: u64,
    },
}

/// This broker's share of a tenant-wide `per_second` rate when `brokers`
/// brokers are live: never below `floor`, never above the rate itself.
pub fn share(per_second: f64, brokers: u64, floor: f64) -> f64 {
    (per_second / brokers.max(1) as f64).max(floor.min(per_second))
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// May be negative: a large batch admitted on a full bucket is owed.
    tokens: f64,
    rate: f64,
}

impl Bucket {
    fn full(rate: f64) -> Bucket {
        Bucket { tokens: rate, rate }
    }

    fn refill(&mut self, rate: f64, elapsed: Duration) {
        // A changed quota or broker count takes effect at once; the burst is
        // one second's worth of the share.
        self.rate = rate;
        self.tokens = (self.tokens + rate * elapsed.as_secs_f64()).min(rate);
    }

    /// How long until `needed` may be taken. A batch larger than the bucket
    /// needs only a full bucket (it then leaves a debt).
    fn wait_for(&self, needed: f64) -> Duration {
        let needed = needed.min(self.rate);
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

/// A tenant's publish quota as the feed states it (for the whole cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    pub messages_per_second: i64,
    pub bytes_per_second: i64,
}

#[derive(Default)]
pub struct PublishLimits {
    // A std mutex: the critical section is a few arithmetic operations and never awaits.
    tenants: Mutex<HashMap<i64, TenantBuckets>>,
}

impl PublishLimits {
    /// Takes `messages` and `bytes` from the tenant's buckets on this broker,
    /// one of `live_brokers` sharing `quota`, or refuses the whole batch.
    pub fn admit(
        &self,
        tenant_id: i64,
        quota: RateQuota,
        live_brokers: u64,
        messages: u64,
        bytes: u64,
    ) -> Result<(), Refusal> {
        self.admit_at(
            Instant::now(),
            tenant_id,
            quota,
            live_brokers,
            messages,
            bytes,
        )
    }

    fn admit_at(
        &self,
        now: Instant,
        tenant_id: i64,
        quota: RateQuota,
        live_brokers: u64,
        messages: u64,
        bytes: u64,
    ) -> Result<(), Refusal> {
        let message_quota = quota.messages_per_second.max(1) as f64;
        let byte_quota = quota.bytes_per_second.max(1) as f64;
        if messages as f64 > message_quota {
            return Err(Refusal::TooLarge {
                what: "messages",
                needed: messages,
                per_second: message_quota as u64,
            });
        }
        if bytes as f64 > byte_quota {
            return Err(Refusal::TooLarge {
                what: "bytes",
                needed: bytes,
                per_second: byte_quota as u64,
            });
        }
        let message_rate = share(message_quota, live_brokers, MIN_MESSAGES_PER_SECOND);
        let byte_rate = share(byte_quota, live_brokers, MIN_BYTES_PER_SECOND);
        let Ok(mut tenants) = self.tenants.lock() else {
            // A panic elsewhere poisoned the map; admitting is safer than refusing everyone.
            return Ok(());
        };
        let entry = tenants.entry(tenant_id).or_insert(TenantBuckets {
            messages: Bucket::full(message_rate),
            bytes: Bucket::full(byte_rate),
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

/// Publishes refused by the rate quota, per tenant (for `/metrics`).
#[derive(Debug, Default)]
pub struct RateRefusals {
    by_tenant: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl RateRefusals {
    pub fn add(&self, tenant: &str) {
        let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        *by_tenant.entry(tenant.to_string()).or_default() += 1;
    }

    /// The counts of the tenants `live` accepts; the others (deleted
    /// tenants) are dropped for good.
    pub fn retain(&self, live: impl Fn(&str) -> bool) -> Vec<(String, u64)> {
        let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        by_tenant.retain(|tenant, _| live(tenant));
        by_tenant.iter().map(|(t, n)| (t.clone(), *n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(messages_per_second: i64, bytes_per_second: i64) -> RateQuota {
        RateQuota {
            messages_per_second,
            bytes_per_second,
        }
    }

    impl PublishLimits {
        /// `admit_at` on the only live broker.
        fn alone(
            &self,
            now: Instant,
            tenant_id: i64,
            messages_per_s: i64,
            bytes_per_s: i64,
            messages: u64,
            bytes: u64,
        ) -> Result<(), Refusal> {
            let quota = quota(messages_per_s, bytes_per_s);
            self.admit_at(now, tenant_id, quota, 1, messages, bytes)
        }
    }

    #[test]
    fn burst_then_refill() {
        let limits = PublishLimits::default();
        let start = Instant::now();
        assert!(
            limits.alone(start, 1, 10, 1_000_000, 10, 10).is_ok(),
            "one second of burst"
        );
        let refused = limits.alone(start, 1, 10, 1_000_000, 1, 1);
        let Err(Refusal::Later { retry_after }) = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        assert!(
            retry_after > Duration::from_millis(90) && retry_after <= Duration::from_millis(100)
        );
        assert!(
            limits
                .alone(start + Duration::from_millis(100), 1, 10, 1_000_000, 1, 1)
                .is_ok()
        );
    }

    #[test]
    fn tenants_do_not_share_buckets_and_bytes_count() {
        let limits = PublishLimits::default();
        let now = Instant::now();
        assert!(limits.alone(now, 1, 1000, 100, 1, 100).is_ok());
        assert!(matches!(
            limits.alone(now, 1, 1000, 100, 1, 1),
            Err(Refusal::Later { .. })
        ));
        assert!(limits.alone(now, 2, 1000, 100, 1, 100).is_ok());
    }

    #[test]
    fn a_batch_beyond_one_second_of_quota_never_fits() {
        let limits = PublishLimits::default();
        let refused = limits.alone(Instant::now(), 1, 10, 1000, 11, 1);
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
        assert!(limits.alone(now, 1, 10, 1000, 6, 1).is_ok());
        assert!(limits.alone(now, 1, 10, 1000, 6, 1).is_err());
        assert!(
            limits.alone(now, 1, 10, 1000, 4, 1).is_ok(),
            "the refused 6 were not taken"
        );
    }

    #[test]
    fn the_share_is_the_rate_over_live_brokers_with_a_floor() {
        assert_eq!(share(300.0, 3, 1.0), 100.0);
        assert_eq!(share(300.0, 1, 1.0), 300.0);
        assert_eq!(share(300.0, 0, 1.0), 300.0, "no count known: one broker");
        assert_eq!(share(10.0, 100, 1.0), 1.0, "never below the floor");
        assert_eq!(share(0.5, 3, 1.0), 0.5, "nor above the rate itself");
        assert_eq!(share(4096.0, 8, MIN_BYTES_PER_SECOND), MIN_BYTES_PER_SECOND);
    }

    #[test]
    fn each_of_three_brokers_admits_a_third_of_the_rate() {
        let limits = PublishLimits::default();
        let start = Instant::now();
        let q = quota(30, 1_000_000);
        assert!(
            limits.admit_at(start, 1, q, 3, 10, 10).is_ok(),
            "a third of the burst"
        );
        let refused = limits.admit_at(start, 1, q, 3, 1, 1);
        let Err(Refusal::Later { retry_after }) = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        assert!(
            retry_after > Duration::from_millis(90) && retry_after <= Duration::from_millis(100),
            "refills at 10 messages/s: {retry_after:?}"
        );
        let later = start + Duration::from_millis(100);
        assert!(limits.admit_at(later, 1, q, 3, 1, 1).is_ok());
    }

    #[test]
    fn bytes_are_shared_the_same_way() {
        let limits = PublishLimits::default();
        let now = Instant::now();
        let q = quota(1_000, 30_000);
        assert!(limits.admit_at(now, 1, q, 3, 1, 10_000).is_ok());
        assert!(matches!(
            limits.admit_at(now, 1, q, 3, 1, 1),
            Err(Refusal::Later { .. })
        ));
    }

    #[test]
    fn brokers_together_admit_the_tenant_rate_not_a_multiple_of_it() {
        // Three brokers, each offered 100 messages/s for 10 s, tenant quota 30/s.
        let brokers: Vec<PublishLimits> = (0..3).map(|_| PublishLimits::default()).collect();
        let start = Instant::now();
        let q = quota(30, 1_000_000);
        let mut admitted = 0;
        for tick in 0..1_000u64 {
            let now = start + Duration::from_millis(10 * tick);
            for broker in &brokers {
                if broker.admit_at(now, 1, q, 3, 1, 1).is_ok() {
                    admitted += 1;
                }
            }
        }
        // 10 s at 30/s plus the three brokers' bursts (10 each).
        assert!(
            (290..=331).contains(&admitted),
            "admitted {admitted} messages"
        );
    }

    #[test]
    fn a_batch_over_the_share_but_within_the_quota_fits_a_full_bucket_and_is_repaid() {
        let limits = PublishLimits::default();
        let start = Instant::now();
        let q = quota(30, 1_000_000);
        assert!(
            limits.admit_at(start, 1, q, 3, 25, 25).is_ok(),
            "a batch the tenant may send is not refused forever"
        );
        // 25 taken from a bucket of 10: 15 owed, repaid at 10/s before the
        // next message (1.6 s).
        let owed = start + Duration::from_secs(1);
        let refused = limits.admit_at(owed, 1, q, 3, 1, 1);
        let Err(Refusal::Later { retry_after }) = refused else {
            panic!("expected a refusal, got {refused:?}");
        };
        assert!(
            retry_after > Duration::from_millis(590) && retry_after <= Duration::from_millis(600),
            "{retry_after:?}"
        );
        let repaid = start + Duration::from_millis(1_600);
        assert!(limits.admit_at(repaid, 1, q, 3, 1, 1).is_ok());
        assert_eq!(
            limits.admit_at(start, 2, q, 3, 31, 1),
            Err(Refusal::TooLarge {
                what: "messages",
                needed: 31,
                per_second: 30
            }),
            "too large is judged against the whole quota"
        );
    }

    #[test]
    fn a_new_broker_count_takes_effect_at_once() {
        let limits = PublishLimits::default();
        let start = Instant::now();
        let q = quota(30, 1_000_000);
        assert!(limits.admit_at(start, 1, q, 1, 30, 1).is_ok());
        // A second later two more brokers are live: the bucket holds a third.
        let later = start + Duration::from_secs(1);
        assert!(limits.admit_at(later, 1, q, 3, 10, 1).is_ok());
        assert!(limits.admit_at(later, 1, q, 3, 1, 1).is_err());
    }
}

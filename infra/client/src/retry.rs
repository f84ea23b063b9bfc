//! When a call is sent again.
//!
//! - **429** (`rate-limited`): always retried. Sluice refuses a rate-limited
//!   request whole before storing anything, so sending it again cannot
//!   duplicate a message or a record.
//! - **503** (`unavailable`): retried only for requests that are safe to
//!   repeat after they may have taken effect: reads (`GET`), declares
//!   (`PUT`, and `POST /v1/bindings`, which is identified by what it
//!   matches), lease extensions, consumer-group heartbeats, commits and
//!   seeks, and a produce that carries an idempotent producer (its sequence
//!   numbers make a repeat a `duplicate`). A 503 can come from a broker that
//!   forwarded a publish, lost the answer and does not know whether the
//!   target stored it, so publishes, keyless produces, receives (which lease
//!   messages), acks and nacks (a repeat answers `stale`), purges,
//!   redrives, deletes, joins and creations are not retried: the caller
//!   sees the 503 and decides (a publisher with `message_id`s into
//!   dedup-windowed queues can resend safely). [`Call::retry_unavailable`]
//!   overrides the choice per request.
//! - Nothing else is retried; transport errors are returned as they are.
//!
//! A retry waits the answer's `Retry-After` (delta-seconds; Sluice sends
//! whole seconds), else an exponential backoff from
//! [`RetryPolicy::backoff`]; it gives up (returning the last answer's
//! error) after [`RetryPolicy::max_attempts`], or as soon as the next wait
//! would take the total past [`RetryPolicy::max_total_wait`]: no point
//! sleeping to fail anyway.
//!
//! [`Call::retry_unavailable`]: crate::Call::retry_unavailable

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How often and how long a call is retried on 429 and (where safe) 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The most a call sleeps in total across its retries.
    pub max_total_wait: Duration,
    /// The first wait when the answer has no `Retry-After`; doubled per retry.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 30 s of waiting at most, 100 ms first backoff.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_total_wait: Duration::from_secs(30),
            backoff: Duration::from_millis(100),
        }
    }
}

impl RetryPolicy {
    /// Every answer is returned as it came (tests asserting 429 or 503, a
    /// forwarder relaying them, a load generator counting them).
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        max_total_wait: Duration::ZERO,
        backoff: Duration::ZERO,
    };

    /// The wait before attempt `attempts_made + 1`, given the waits so far
    /// and the answer's `Retry-After`; `None`: give up now.
    pub fn next_wait(
        &self,
        attempts_made: u32,
        waited: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        let wait = retry_after.unwrap_or_else(|| {
            let doublings = attempts_made.saturating_sub(1).min(16);
            self.backoff.saturating_mul(1 << doublings)
        });
        (waited.saturating_add(wait) <= self.max_total_wait).then_some(wait)
    }
}

/// Whether an answer with `status` may be retried, `unavailable_safe`
/// saying whether the request is safe to repeat after a 503.
pub(crate) fn retryable(status: StatusCode, unavailable_safe: bool) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::SERVICE_UNAVAILABLE && unavailable_safe)
}

/// The `Retry-After` of an answer in delta-seconds; an HTTP-date (which
/// Sluice never sends) counts as absent, so the backoff applies.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn retry_after_is_honoured_within_the_budget() {
        let policy = RetryPolicy {
            max_attempts: 5,
            max_total_wait: S(10),
            backoff: MS(100),
        };
        assert_eq!(policy.next_wait(1, S(0), Some(S(3))), Some(S(3)));
        assert_eq!(policy.next_wait(2, S(3), Some(S(7))), Some(S(7)));
        // A wait past the budget gives up at once rather than sleeping to fail.
        assert_eq!(policy.next_wait(2, S(3), Some(S(8))), None);
        assert_eq!(policy.next_wait(1, S(0), Some(S(60))), None);
    }

    #[test]
    fn without_retry_after_the_backoff_doubles() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.next_wait(1, S(0), None), Some(MS(100)));
        assert_eq!(policy.next_wait(2, MS(100), None), Some(MS(200)));
        assert_eq!(policy.next_wait(3, MS(300), None), Some(MS(400)));
        assert_eq!(policy.next_wait(4, MS(700), None), None, "4 attempts made");
    }

    #[test]
    fn none_never_retries() {
        assert_eq!(RetryPolicy::NONE.next_wait(1, S(0), Some(S(0))), None);
        assert_eq!(RetryPolicy::NONE.next_wait(1, S(0), None), None);
    }

    #[test]
    fn which_answers_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS, false));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE, true));
        assert!(!retryable(StatusCode::SERVICE_UNAVAILABLE, false));
        assert!(!retryable(StatusCode::INTERNAL_SERVER_ERROR, true));
        assert!(!retryable(StatusCode::BAD_GATEWAY, true));
    }

    #[test]
    fn retry_after_parses_delta_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 2 "));
        assert_eq!(retry_after(&headers), Some(S(2)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), None);
    }
}

//! Latency histograms and the JSON shapes of the one-line report.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Microsecond latencies from 1 µs to one hour, three significant digits.
pub struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> Latencies {
        // Bounds and precision are constants that hdrhistogram accepts.
        Latencies(
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid constant histogram bounds"),
        )
    }

    pub fn record_micros(&mut self, micros: u64) {
        self.0.saturating_record(micros.max(1));
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// `{"p50","p99","p999","max","mean","count"}` in milliseconds, or null when empty.
    pub fn to_json(&self) -> Value {
        if self.0.is_empty() {
            return Value::Null;
        }
        let ms = |micros: u64| round3(micros as f64 / 1000.0);
        json!({
            "p50": ms(self.0.value_at_quantile(0.50)),
            "p99": ms(self.0.value_at_quantile(0.99)),
            "p999": ms(self.0.value_at_quantile(0.999)),
            "max": ms(self.0.max()),
            "mean": round3(self.0.mean() / 1000.0),
            "count": self.0.len(),
        })
    }
}

/// The number at `path` in `value` (0 when absent), for ratios.
pub fn number(value: &Value, path: &[&str]) -> f64 {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// `count / secs`, rounded; 0 when no time passed.
pub fn per_s(count: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        round3(count / secs)
    } else {
        0.0
    }
}

/// Moves `key` out of a JSON object (null when absent).
pub fn take(value: &mut Value, key: &str) -> Value {
    value
        .as_object_mut()
        .and_then(|o| o.remove(key))
        .unwrap_or(Value::Null)
}

/// Rounds to three decimals so the JSON line stays readable.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `numerator / denominator`, or null when the denominator is zero.
pub fn ratio(numerator: f64, denominator: f64) -> Value {
    if denominator > 0.0 {
        json!(round3(numerator / denominator))
    } else {
        Value::Null
    }
}

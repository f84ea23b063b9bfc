//! The RFC 7807 problem document (`application/problem+json`) as it travels:
//! both planes render their errors in this shape, and every reader of one
//! (the typed client, a broker relaying another broker's answer) parses it
//! here. Members beyond the standard ones (`quota`, `limit`, `used`,
//! `earliest_offset`, `high_watermark`, `expected_sequence`, `differences`)
//! are kept as they came in [`Problem::extensions`], so a reader never drops
//! what a newer server added.

use serde::{Deserialize, Serialize};

/// Prefix of every problem `type`; the suffix is one of the [`slug`]s.
pub const PROBLEM_BASE: &str = "https://sluice.dev/problems/";

/// The stable suffixes of problem `type`s, one table for both planes.
pub mod slug {
    pub const VALIDATION: &str = "validation";
    pub const MALFORMED_JSON: &str = "malformed-json";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported-media-type";
    pub const PAYLOAD_TOO_LARGE: &str = "payload-too-large";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const FORBIDDEN: &str = "forbidden";
    pub const TENANT_SUSPENDED: &str = "tenant-suspended";
    pub const NOT_FOUND: &str = "not-found";
    pub const DECLARE_CONFLICT: &str = "declare-conflict";
    pub const ALREADY_EXISTS: &str = "already-exists";
    pub const IN_USE: &str = "in-use";
    pub const QUOTA_EXCEEDED: &str = "quota-exceeded";
    pub const RATE_LIMITED: &str = "rate-limited";
    pub const STALE_RECEIPT: &str = "stale-receipt";
    pub const NOT_ACTIVE_CONSUMER: &str = "not-active-consumer";
    pub const OFFSET_OUT_OF_RANGE: &str = "offset-out-of-range";
    pub const OUT_OF_ORDER_SEQUENCE: &str = "out-of-order-sequence";
    pub const DUPLICATE_SEQUENCE: &str = "duplicate-sequence";
    pub const PRODUCER_FENCED: &str = "producer-fenced";
    pub const STALE_GENERATION: &str = "stale-generation";
    pub const NOT_PARTITION_OWNER: &str = "not-partition-owner";
    pub const INCONSISTENT_STRATEGY: &str = "inconsistent-strategy";
    pub const GROUP_NOT_EMPTY: &str = "group-not-empty";
    pub const UNAVAILABLE: &str = "unavailable";
    pub const INTERNAL: &str = "internal";
}

/// One problem document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable URI naming the kind of problem: [`PROBLEM_BASE`] + a [`slug`].
    #[serde(rename = "type")]
    pub problem_type: String,
    #[serde(default)]
    pub title: String,
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    /// The offending request field, as a JSON path or parameter name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The rule the field broke (`charset`, `range`, `required`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Every other member, as it came.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// The slug of a Sluice problem type (`rate-limited`), if it is one.
    pub fn slug(&self) -> Option<&str> {
        self.problem_type.strip_prefix(PROBLEM_BASE)
    }

    /// Whether this is the problem named by `slug`.
    pub fn is(&self, slug: &str) -> bool {
        self.slug() == Some(slug)
    }

    /// An extension member read as an unsigned number (`expected_sequence`,
    /// `earliest_offset`, ...).
    pub fn u64_member(&self, name: &str) -> Option<u64> {
        self.extensions
            .get(name)
            .and_then(serde_json::Value::as_u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_members_survive_a_round_trip() {
        let wire = serde_json::json!({
            "type": "https://sluice.dev/problems/out-of-order-sequence",
            "title": "Producer sequence refused",
            "status": 409,
            "detail": "expected 7",
            "expected_sequence": 7,
        });
        let problem: Problem = serde_json::from_value(wire.clone()).expect("parse");
        assert!(problem.is(slug::OUT_OF_ORDER_SEQUENCE));
        assert_eq!(problem.u64_member("expected_sequence"), Some(7));
        assert_eq!(problem.field, None);
        assert_eq!(serde_json::to_value(&problem).expect("json"), wire);
    }

    #[test]
    fn a_foreign_type_has_no_slug() {
        let problem: Problem = serde_json::from_value(serde_json::json!({
            "type": "about:blank", "status": 500
        }))
        .expect("parse");
        assert_eq!(problem.slug(), None);
        assert!(!problem.is(slug::INTERNAL));
    }
}

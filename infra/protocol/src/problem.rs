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
    pub const METHOD_NOT_ALLOWED: &str = "method-not-allowed";
    pub const PAYLOAD_TOO_LARGE: &str = "payload-too-large";
    pub const URI_TOO_LONG: &str = "uri-too-long";
    pub const HEADERS_TOO_LARGE: &str = "headers-too-large";
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
    pub const CAPACITY_EXHAUSTED: &str = "capacity-exhausted";
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

/// The problem for an error answer the HTTP framework wrote itself rather
/// than one of our handlers (axum's 405 for a method a route does not have,
/// its 400 for a path parameter that is not UTF-8 or does not parse): its
/// type by status from the [`slug`] table (`about:blank` where none fits,
/// as RFC 7807 allows), `reason` as title, `text` (the framework's message)
/// as detail, and the parameter that message names, if it names one
/// (``Invalid URL: Invalid UTF-8 in `queue` ``), as `field`.
pub fn framework_problem(status: u16, reason: &str, text: &str) -> Problem {
    let kind = match status {
        400 | 422 => Some(slug::VALIDATION),
        404 => Some(slug::NOT_FOUND),
        405 => Some(slug::METHOD_NOT_ALLOWED),
        413 => Some(slug::PAYLOAD_TOO_LARGE),
        414 => Some(slug::URI_TOO_LONG),
        431 => Some(slug::HEADERS_TOO_LARGE),
        415 => Some(slug::UNSUPPORTED_MEDIA_TYPE),
        429 => Some(slug::RATE_LIMITED),
        503 => Some(slug::UNAVAILABLE),
        500..=599 => Some(slug::INTERNAL),
        _ => None,
    };
    let (field, rule) = if kind == Some(slug::VALIDATION) {
        // axum names the key only in these two shapes (a tuple's "value at
        // index 0" has no name to give).
        let field = ["UTF-8 in `", "Cannot parse `"].iter().find_map(|shape| {
            let (_, rest) = text.split_once(shape)?;
            let (name, after) = rest.split_once('`')?;
            (shape.starts_with("UTF") || after.starts_with(" with value"))
                .then_some(name)
                .filter(|name| !name.is_empty())
        });
        let rule = if text.contains("UTF-8") {
            "utf-8"
        } else {
            "format"
        };
        (field.map(str::to_string), Some(rule.to_string()))
    } else {
        (None, None)
    };
    Problem {
        problem_type: kind.map_or_else(
            || "about:blank".to_string(),
            |s| format!("{PROBLEM_BASE}{s}"),
        ),
        title: reason.to_string(),
        status,
        detail: if text.is_empty() {
            reason.to_string()
        } else {
            text.to_string()
        },
        field,
        rule,
        extensions: serde_json::Map::new(),
    }
}

/// The HTTP servers' side of problem documents (feature `axum`).
#[cfg(feature = "axum")]
pub mod server {
    use axum::body::Body;
    use axum::http::{HeaderValue, Method, StatusCode, header};
    use axum::response::Response;

    use super::framework_problem;

    /// Turns an error answer the framework wrote itself — axum's 405 for a
    /// method a route does not have (empty body), its 400 for a path parameter
    /// that is not UTF-8 or does not parse (text/plain) — into a problem
    /// document, keeping its status and headers (`Allow`). Answers that are
    /// already problems (every error of either plane's table) pass untouched.
    /// The one layer, on both planes, that makes every error RFC 7807.
    pub async fn framework_errors_as_problems(method: Method, response: Response) -> Response {
        let status = response.status();
        let is_problem = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/problem+json"));
        if is_problem || !(status.is_client_error() || status.is_server_error()) {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        // The framework's messages are a line; anything longer is not its.
        let text = axum::body::to_bytes(body, 4096)
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
            .unwrap_or_default();
        // axum adds `Allow` to its 405 after route layers like this one ran.
        let text = if status == StatusCode::METHOD_NOT_ALLOWED && text.is_empty() {
            format!("`{method}` is not allowed on this route; `Allow` lists the methods that are")
        } else {
            text
        };
        let reason = status.canonical_reason().unwrap_or("Error");
        let problem = framework_problem(status.as_u16(), reason, &text);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(parts, Body::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framework_answers_get_a_type_and_the_parameter_they_name() {
        let bad_path =
            framework_problem(400, "Bad Request", "Invalid URL: Invalid UTF-8 in `queue`");
        assert!(bad_path.is(slug::VALIDATION));
        assert_eq!(bad_path.field.as_deref(), Some("queue"));
        assert_eq!(bad_path.rule.as_deref(), Some("utf-8"));
        let keyed = "Invalid URL: Cannot parse `tenant_id` with value `x` to a `i64`";
        let keyed = framework_problem(400, "Bad Request", keyed);
        assert_eq!(keyed.field.as_deref(), Some("tenant_id"));
        assert_eq!(keyed.rule.as_deref(), Some("format"));
        let by_index = "Invalid URL: Cannot parse value at index 0 with value `x` to a `i64`";
        assert_eq!(framework_problem(400, "Bad Request", by_index).field, None);
        let unnamed = "Invalid URL: Cannot parse `x` to a `i64`";
        assert_eq!(framework_problem(400, "Bad Request", unnamed).field, None);
        let method = framework_problem(405, "Method Not Allowed", "");
        assert!(method.is(slug::METHOD_NOT_ALLOWED));
        assert_eq!(method.detail, "Method Not Allowed");
        assert_eq!(method.field, None);
        assert_eq!(
            framework_problem(408, "Request Timeout", "").problem_type,
            "about:blank"
        );
    }

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

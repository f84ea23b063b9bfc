//! The one place a broker error becomes an HTTP answer: each kind's status,
//! its stable RFC 7807 problem `type` (`https://sluice.dev/problems/<slug>`,
//! the namespace both planes share, `sluice_protocol::problem`) and title,
//! and the problem document (`application/problem+json`) it renders as.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_protocol::problem::PROBLEM_BASE;
pub use sluice_protocol::problem::server::framework_errors_as_problems;
use utoipa::IntoResponses;

use crate::error::BrokerError;

/// The one table: each error kind's HTTP status, problem type slug and title.
pub fn kind(err: &BrokerError) -> (StatusCode, &'static str, &'static str) {
    use BrokerError::*;
    match err {
        Validation { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
        ),
        UnsupportedMediaType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        ),
        MalformedJson(_) => (
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON body",
        ),
        Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
        Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
        TenantSuspended(_) => (
            StatusCode::FORBIDDEN,
            "tenant-suspended",
            "Tenant suspended",
        ),
        TooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
        ),
        NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        UnknownRoute(_) => (StatusCode::NOT_FOUND, "not-found", "Route not found"),
        RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Over the publish rate quota",
        ),
        StaleReceipt(_) => (StatusCode::CONFLICT, "stale-receipt", "Stale receipt"),
        NotActiveConsumer(_) => (
            StatusCode::CONFLICT,
            "not-active-consumer",
            "Not the active consumer",
        ),
        OffsetOutOfRange { .. } => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            "offset-out-of-range",
            "Offset out of range",
        ),
        ProducerSequence { slug, .. } => (StatusCode::CONFLICT, slug, "Producer sequence refused"),
        GroupConflict { slug, .. } => (StatusCode::CONFLICT, slug, "Consumer group conflict"),
        QuotaExceeded { .. } => (StatusCode::FORBIDDEN, "quota-exceeded", "Quota exceeded"),
        Remote { problem, .. } => (
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_GATEWAY),
            "remote",
            "Problem on the hosting broker",
        ),
        Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        ),
        CapacityExhausted { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "capacity-exhausted",
            "Broker capacity exhausted",
        ),
        Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        ),
    }
}

/// An RFC 7807 problem document (`application/problem+json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem; clients branch on this.
    #[serde(rename = "type")]
    problem_type: String,
    title: &'static str,
    status: u16,
    detail: String,
    /// The offending request field, as a JSON path (`messages[2].body`) or parameter name.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// The rule the field broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'static str>,
    /// Offset out of range: the first offset still readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    earliest_offset: Option<u64>,
    /// Offset out of range: the next offset to be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    high_watermark: Option<u64>,
    /// Out-of-order producer sequence: the sequence the next batch must start with.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_sequence: Option<u64>,
    /// Quota exceeded: which quota (as the control plane names it).
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<&'static str>,
    /// Quota exceeded: the tenant's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
    /// Quota exceeded: what the tenant uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    used: Option<u64>,
}

impl BrokerError {
    /// The problem document this error renders as.
    pub(crate) fn problem(&self) -> Problem {
        let (status, slug, title) = kind(self);
        let (field, rule) = match self {
            BrokerError::Validation { field, rule, .. } => (Some(field.clone()), Some(*rule)),
            BrokerError::TooLarge { field, .. } => (Some(field.clone()), Some("max_message_bytes")),
            _ => (None, None),
        };
        let (earliest_offset, high_watermark) = match self {
            BrokerError::OffsetOutOfRange {
                earliest_offset,
                high_watermark,
                ..
            } => (Some(*earliest_offset), Some(*high_watermark)),
            _ => (None, None),
        };
        let expected_sequence = match self {
            BrokerError::ProducerSequence {
                expected_sequence, ..
            } => *expected_sequence,
            _ => None,
        };
        let (quota, limit, used) = match self {
            BrokerError::QuotaExceeded {
                quota, limit, used, ..
            } => (Some(*quota), Some(*limit), Some(*used)),
            _ => (None, None, None),
        };
        Problem {
            problem_type: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            field,
            rule,
            earliest_offset,
            high_watermark,
            expected_sequence,
            quota,
            limit,
            used,
        }
    }

    /// The problem document as JSON text, for answers that are not an
    /// HTTP response of their own (the last event of a push stream).
    pub fn problem_json(&self) -> String {
        let json = match self {
            BrokerError::Remote { problem, .. } => serde_json::to_string(problem),
            _ => serde_json::to_string(&self.problem()),
        };
        json.unwrap_or_else(|_| "{}".into())
    }
}

impl IntoResponse for BrokerError {
    fn into_response(self) -> Response {
        if let BrokerError::Internal(err) = &self {
            tracing::error!(error = ?err, "internal error");
        }
        if let BrokerError::Remote {
            problem,
            retry_after_secs,
        } = self
        {
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, Json(problem)).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            if let Some(retry_after) = retry_after_secs {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            return response;
        }
        let status = kind(&self).0;
        let problem = self.problem();
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let BrokerError::RateLimited {
            retry_after_secs, ..
        }
        | BrokerError::CapacityExhausted {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The error responses every data endpoint can give.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ProblemResponses {
    /// A body that is not JSON text.
    #[response(status = 400, content_type = "application/problem+json")]
    MalformedJson(Problem),
    /// A body whose `Content-Type` is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Invalid field: `field` names it, `rule` the rule it broke.
    #[response(status = 422, content_type = "application/problem+json")]
    Validation(Problem),
    /// Missing, unknown, revoked or expired credential.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Scope missing or tenant suspended.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such queue or exchange in the caller's tenant.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// A receipt no longer current (its lease expired and the message was
    /// delivered again), a producer sequence out of order or fenced, or a
    /// consumer-group conflict (stale generation, group not empty).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// A body over the tenant's `max_message_bytes`.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Over the tenant's publish rate; retry after `Retry-After` seconds.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The queue is not hosted here or its group is unavailable; or the
    /// broker cannot open it now (`capacity-exhausted`, with `Retry-After`).
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Method;

    #[test]
    fn a_relayed_problem_keeps_its_status_body_and_retry_after() {
        let body = serde_json::json!({"type": "https://sluice.dev/problems/rate-limited",
            "title": "Over the publish rate quota", "status": 429, "detail": "slow down"});
        let err = BrokerError::Remote {
            problem: Box::new(serde_json::from_value(body).expect("problem")),
            retry_after_secs: Some(3),
        };
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    /// Routes shaped like the data API's (a `GET`-only route, a path
    /// parameter read with axum's `Path`) behind the layer `router` uses.
    fn framework_router() -> axum::Router {
        use axum::routing::get;
        axum::Router::new()
            .route("/v1/whoami", get(|| async { "me" }))
            .route(
                "/v1/queues/{queue}/stats",
                get(|axum::extract::Path(queue): axum::extract::Path<String>| async move { queue }),
            )
            .route(
                "/internal/v1/tenants/{tenant_id}/queues/{queue}/republish",
                get(
                    |axum::extract::Path((tenant, _)): axum::extract::Path<(i64, String)>| async move {
                        tenant.to_string()
                    },
                ),
            )
            .layer(axum::middleware::map_response(framework_errors_as_problems))
    }

    async fn answer(method: Method, uri: &str) -> (Response, serde_json::Value) {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = framework_router()
            .oneshot(request)
            .await
            .expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (Response::from_parts(parts, Body::empty()), json)
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_problem_that_keeps_allow() {
        let (response, problem) = answer(Method::DELETE, "/v1/whoami").await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(
            response.headers()[header::ALLOW]
                .to_str()
                .expect("allow")
                .contains("GET")
        );
        assert_eq!(
            problem["type"],
            "https://sluice.dev/problems/method-not-allowed"
        );
        assert_eq!(problem["status"], 405);
        assert!(
            problem["detail"]
                .as_str()
                .expect("detail")
                .contains("DELETE"),
            "{problem}"
        );
    }

    #[tokio::test]
    async fn a_path_parameter_that_is_not_utf8_is_a_validation_problem_naming_it() {
        let (response, problem) = answer(Method::GET, "/v1/queues/%FF/stats").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(problem["type"], "https://sluice.dev/problems/validation");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["field"], "queue", "{problem}");
        assert_eq!(problem["rule"], "utf-8");

        let (response, problem) =
            answer(Method::GET, "/internal/v1/tenants/x/queues/q/republish").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(problem["type"], "https://sluice.dev/problems/validation");
        // A tuple of parameters is parsed by index: axum does not name it.
        assert_eq!(problem.get("field"), None, "{problem}");
        assert_eq!(problem["rule"], "format");
    }

    #[tokio::test]
    async fn our_own_problems_and_successes_pass_untouched() {
        let (response, body) = answer(Method::GET, "/v1/whoami").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, serde_json::Value::Null, "not JSON: the plain `me`");
    }

    #[test]
    fn validation_problems_name_the_field_and_rule() {
        let err = BrokerError::validation("messages[2].body", "base64", "not valid base64");
        let problem = serde_json::to_value(err.problem()).expect("json");
        assert_eq!(problem["type"], "https://sluice.dev/problems/validation");
        assert_eq!(problem["status"], 422);
        assert_eq!(problem["field"], "messages[2].body");
        assert_eq!(problem["rule"], "base64");
    }
}

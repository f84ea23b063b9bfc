//! The control plane's one error table.
//!
//! Every handler returns `Result<_, ApiError>`; this module alone decides the
//! HTTP status, the stable RFC 7807 problem `type` and the title of each kind,
//! and maps storage errors by Postgres error code rather than by message text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Prefix of every problem `type`; the suffix is the stable slug below.
use sluice_protocol::json_body;
pub use sluice_protocol::problem::PROBLEM_BASE;
pub use sluice_protocol::problem::server::framework_errors_as_problems;

/// One field that differs between a stored resource and a conflicting declare.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Difference {
    pub field: String,
    pub current: serde_json::Value,
    pub requested: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {detail}")]
    Validation {
        field: String,
        rule: &'static str,
        detail: String,
    },
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("tenant `{0}` is suspended")]
    TenantSuspended(String),
    #[error("{kind} `{name}` not found")]
    NotFound { kind: &'static str, name: String },
    /// A route the control plane does not serve; the detail says where it
    /// lives (`sluice_protocol::routes`).
    #[error("{0}")]
    UnknownRoute(String),
    #[error("{kind} `{name}` already exists with different settings")]
    Conflict {
        kind: &'static str,
        name: String,
        differences: Vec<Difference>,
    },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InUse(String),
    #[error("quota `{quota}` exceeded: limit {limit}, in use {used}")]
    QuotaExceeded {
        quota: &'static str,
        limit: i64,
        used: i64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// No live broker can host another group: the service is full until a
    /// broker is added or groups are deleted, so a retry may succeed later.
    #[error("{detail}")]
    CapacityExhausted {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(
        field: impl Into<String>,
        rule: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError::Validation {
            field: field.into(),
            rule,
            detail: detail.into(),
        }
    }

    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        ApiError::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    /// The table: status, stable slug and title for every kind.
    pub fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            MalformedJson(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON body",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            TenantSuspended(_) => (
                StatusCode::FORBIDDEN,
                "tenant-suspended",
                "Tenant suspended",
            ),
            NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            UnknownRoute(_) => (StatusCode::NOT_FOUND, "not-found", "Route not found"),
            Conflict { .. } => (
                StatusCode::CONFLICT,
                "declare-conflict",
                "Declared with different settings",
            ),
            AlreadyExists(_) => (StatusCode::CONFLICT, "already-exists", "Already exists"),
            InUse(_) => (StatusCode::CONFLICT, "in-use", "Resource in use"),
            QuotaExceeded { .. } => (StatusCode::FORBIDDEN, "quota-exceeded", "Quota exceeded"),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            CapacityExhausted { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "capacity-exhausted",
                "Capacity exhausted",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.kind();
        let mut problem = Problem {
            problem_type: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: self.to_string(),
            field: None,
            rule: None,
            differences: None,
            quota: None,
            limit: None,
            used: None,
        };
        match self {
            ApiError::Validation { field, rule, .. } => {
                problem.field = Some(field.clone());
                problem.rule = Some(rule.to_string());
            }
            ApiError::Conflict { differences, .. } => {
                problem.field = differences.first().map(|d| d.field.clone());
                problem.differences = Some(differences.clone());
            }
            ApiError::QuotaExceeded { quota, limit, used } => {
                problem.quota = Some(quota.to_string());
                problem.limit = Some(*limit);
                problem.used = Some(*used);
            }
            _ => {}
        }
        problem
    }
}

/// The shared body rule's refusals (`sluice_protocol::json_body`).
impl From<json_body::BodyRefusal> for ApiError {
    fn from(refusal: json_body::BodyRefusal) -> Self {
        use json_body::BodyRefusal::*;
        let detail = refusal.to_string();
        match refusal {
            NotJson(_) => ApiError::UnsupportedMediaType(detail),
            Malformed(reason) => ApiError::MalformedJson(reason),
            DuplicateKey { field, .. } => ApiError::validation(field, "duplicate-key", detail),
        }
    }
}

/// An RFC 7807 problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem; clients branch on this.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The offending request field, as a JSON path (`retry.multiplier`) or parameter name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The rule the field broke (`charset`, `range`, `required`, `unknown-field`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<Vec<Difference>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = ?err, "internal error");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::CapacityExhausted {
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

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            // Postgres SQLSTATE codes, see the "Errors" appendix of its manual.
            match db.code().as_deref() {
                Some("23505") => {
                    return ApiError::AlreadyExists(format!(
                        "already exists ({})",
                        db.constraint().unwrap_or("unique constraint")
                    ));
                }
                Some("23503") => {
                    return ApiError::InUse(format!(
                        "still referenced by another resource ({})",
                        db.constraint().unwrap_or("foreign key")
                    ));
                }
                Some("40001") | Some("40P01") => {
                    return ApiError::Unavailable("concurrent update, retry the request".into());
                }
                _ => {}
            }
        }
        if matches!(
            err,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
        ) {
            return ApiError::Unavailable("database unavailable".into());
        }
        ApiError::Internal(err.into())
    }
}

/// The domain crates check their own settings and name the field and rule
/// they broke in one shape each; all become the same validation problem.
macro_rules! invalid_setting_is_validation {
    ($($invalid:ty),+) => {$(
        impl From<$invalid> for ApiError {
            fn from(invalid: $invalid) -> Self {
                ApiError::Validation {
                    field: invalid.field,
                    rule: invalid.rule,
                    detail: invalid.detail,
                }
            }
        }
    )+};
}

invalid_setting_is_validation!(
    sluice_queue::InvalidSetting,
    sluice_stream::InvalidSetting,
    sluice_routing::InvalidSetting
);

pub type ApiResult<T> = Result<T, ApiError>;

//! The data plane's one error table: each kind maps to an HTTP status and a
//! stable RFC 7807 problem `type` (the same `https://sluice.dev/problems/`
//! namespace as the control plane, so clients branch on one set of types).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const PROBLEM_BASE: &str = "https://sluice.dev/problems/";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{field}: {detail}")]
    Validation {
        field: String,
        rule: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("tenant `{0}` is suspended")]
    TenantSuspended(String),
    #[error("{kind} `{name}` not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl BrokerError {
    pub fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        use BrokerError::*;
        match self {
            Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            TenantSuspended(_) => (
                StatusCode::FORBIDDEN,
                "tenant-suspended",
                "Tenant suspended",
            ),
            NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    problem_type: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'static str>,
}

impl IntoResponse for BrokerError {
    fn into_response(self) -> Response {
        if let BrokerError::Internal(err) = &self {
            tracing::error!(error = ?err, "internal error");
        }
        let (status, slug, title) = self.kind();
        let (field, rule) = match &self {
            BrokerError::Validation { field, rule, .. } => (Some(field.clone()), Some(*rule)),
            _ => (None, None),
        };
        let problem = Problem {
            problem_type: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            field,
            rule,
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type BrokerResult<T> = Result<T, BrokerError>;

//! The data plane's one error table: each kind maps to an HTTP status and a
//! stable RFC 7807 problem `type` (the same `https://sluice.dev/problems/`
//! namespace as the control plane, so clients branch on one set of types).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_queue::QueueError;

use crate::queue::{CommandError, GroupError};

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
    /// A body (or the request) is over the tenant's size quota.
    #[error("{field}: {detail}")]
    TooLarge { field: String, detail: String },
    #[error("{kind} `{name}` not found")]
    NotFound { kind: &'static str, name: String },
    /// Over a rate quota: retry after the given seconds (sent as `Retry-After`).
    #[error("{detail}")]
    RateLimited {
        detail: String,
        retry_after_secs: u64,
    },
    /// A receipt whose lease is over (expired, returned, delivered again).
    #[error("{0}")]
    StaleReceipt(String),
    /// Single active consumer: another consumer is the active one.
    #[error("{0}")]
    NotActiveConsumer(String),
    /// A fetch outside `[earliest_offset, high_watermark]`.
    #[error("{detail}")]
    OffsetOutOfRange {
        detail: String,
        earliest_offset: u64,
        high_watermark: u64,
    },
    /// An idempotent producer's batch out of sequence (or fenced).
    #[error("{detail}")]
    ProducerSequence {
        slug: &'static str,
        detail: String,
        expected_sequence: Option<u64>,
    },
    /// A consumer-group command refused (stale generation, not the owner, ...).
    #[error("{detail}")]
    GroupConflict { slug: &'static str, detail: String },
    /// The tenant's storage is full (`max_storage_bytes`).
    #[error("{detail}")]
    QuotaExceeded {
        quota: &'static str,
        limit: i64,
        used: u64,
        detail: String,
    },
    #[error("{0}")]
    Unavailable(String),
    /// Another broker's problem answer to a forwarded request, passed
    /// through as it came (status, body, `Retry-After`).
    #[error("{body}")]
    Remote {
        status: StatusCode,
        retry_after: Option<HeaderValue>,
        body: serde_json::Value,
    },
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
            TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
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
            ProducerSequence { slug, .. } => {
                (StatusCode::CONFLICT, slug, "Producer sequence refused")
            }
            GroupConflict { slug, .. } => (StatusCode::CONFLICT, slug, "Consumer group conflict"),
            QuotaExceeded { .. } => (StatusCode::FORBIDDEN, "quota-exceeded", "Quota exceeded"),
            Remote { status, .. } => (*status, "remote", "Problem on the hosting broker"),
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
    fn problem(&self) -> Problem {
        let (status, slug, title) = self.kind();
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
        serde_json::to_string(&self.problem()).unwrap_or_else(|_| "{}".into())
    }
}

impl IntoResponse for BrokerError {
    fn into_response(self) -> Response {
        if let BrokerError::Internal(err) = &self {
            tracing::error!(error = ?err, "internal error");
        }
        if let BrokerError::Remote {
            status,
            retry_after,
            body,
        } = self
        {
            let mut response = (status, Json(body)).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            if let Some(retry_after) = retry_after {
                headers.insert(header::RETRY_AFTER, retry_after);
            }
            return response;
        }
        let status = self.kind().0;
        let problem = self.problem();
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let BrokerError::RateLimited {
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

pub type BrokerResult<T> = Result<T, BrokerError>;

impl BrokerError {
    pub fn validation(
        field: impl Into<String>,
        rule: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        BrokerError::Validation {
            field: field.into(),
            rule,
            detail: detail.into(),
        }
    }
}

impl From<GroupError> for BrokerError {
    fn from(err: GroupError) -> Self {
        match err {
            GroupError::NotLeader(_) | GroupError::Unavailable(_) => {
                BrokerError::Unavailable(err.to_string())
            }
            GroupError::Storage(_) => BrokerError::Internal(anyhow::Error::new(err)),
        }
    }
}

/// A command the queue refused, as an answer to the caller.
pub fn command_error(err: CommandError) -> BrokerError {
    match err {
        CommandError::Queue(QueueError::UnknownReceipt(receipt)) => BrokerError::NotFound {
            kind: "receipt",
            name: receipt.to_string(),
        },
        CommandError::Queue(QueueError::StaleReceipt(receipt)) => {
            BrokerError::StaleReceipt(format!("receipt {receipt} is stale: its lease is over"))
        }
        CommandError::Queue(err @ QueueError::NotActiveConsumer { .. }) => {
            BrokerError::NotActiveConsumer(err.to_string())
        }
        other => BrokerError::Internal(anyhow::Error::new(other)),
    }
}

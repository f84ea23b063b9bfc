//! The data plane's error kinds, free of any protocol: what went wrong, in
//! the domain's words. Each front end maps them in one place to its own
//! answer (HTTP: `frontend::http::problem`, status + RFC 7807 problem type).

use sluice_protocol::Problem;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{field}: {detail}")]
    Validation {
        field: String,
        rule: &'static str,
        detail: String,
    },
    /// A body that does not say it is JSON (`Content-Type`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A body that is not JSON text.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
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
    /// A route this broker does not serve; the detail says where it lives
    /// (`sluice_protocol::routes`).
    #[error("{0}")]
    UnknownRoute(String),
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
    /// The broker cannot open the group now (out of files or memory, or
    /// over what it may hold open): retry after the given seconds.
    #[error("{detail}")]
    CapacityExhausted {
        detail: String,
        retry_after_secs: u64,
    },
    /// Another broker's problem answer to a relayed request, passed
    /// through as it came (the document and its `Retry-After`).
    #[error("{}", problem.detail)]
    Remote {
        problem: Box<Problem>,
        retry_after_secs: Option<u64>,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
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

/// The shared body rule's refusals (`sluice_protocol::json_body`).
impl From<sluice_protocol::json_body::BodyRefusal> for BrokerError {
    fn from(refusal: sluice_protocol::json_body::BodyRefusal) -> Self {
        use sluice_protocol::json_body::BodyRefusal::*;
        let detail = refusal.to_string();
        match refusal {
            NotJson(_) => BrokerError::UnsupportedMediaType(detail),
            Malformed(reason) => BrokerError::MalformedJson(reason),
            DuplicateKey { field, .. } => BrokerError::validation(field, "duplicate-key", detail),
        }
    }
}

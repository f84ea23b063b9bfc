//! What can go wrong with a call: the server's problem document (kept
//! whole), an answer that is not one, the transport, or a body that does not
//! decode. Problem documents are what callers branch on, so they are a
//! variant of their own with [`ClientError::problem`] and [`ClientError::is`].

use std::time::Duration;

use reqwest::StatusCode;
use sluice_protocol::Problem;

/// Longest piece of a non-problem answer kept in an error.
const MAX_BODY_IN_ERROR: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a problem document (`application/problem+json`).
    #[error("{request}: {status} {}{}", problem.title, detail(&problem.detail))]
    Problem {
        /// `METHOD /path` of the request.
        request: String,
        status: StatusCode,
        problem: Box<Problem>,
        /// The answer's `Retry-After` (seconds), when it had one.
        retry_after: Option<Duration>,
    },
    /// A failure answer that is not a problem document (a proxy's page, an
    /// empty 503, ...): its status and the start of its body.
    #[error("{request}: {status} {body}")]
    Status {
        request: String,
        status: StatusCode,
        body: String,
    },
    /// A success answer whose body is not what the API documents.
    #[error("{request}: {status}, undecodable answer: {source}")]
    Decode {
        request: String,
        status: StatusCode,
        #[source]
        source: serde_json::Error,
    },
    /// A success answer missing a header the API documents (`format=batches`).
    #[error("{request}: {what}")]
    Protocol { request: String, what: String },
    /// The request never got an answer (connect, TLS, timeout, reset).
    #[error("{request}: {source}")]
    Transport {
        request: String,
        #[source]
        source: reqwest::Error,
    },
    /// The request body could not be serialised.
    #[error("{request}: encoding the request: {source}")]
    Encode {
        request: String,
        #[source]
        source: serde_json::Error,
    },
    /// A credential or header value that HTTP cannot carry.
    #[error("invalid header value for {0}")]
    InvalidHeader(String),
}

fn detail(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl ClientError {
    /// The answer's HTTP status, when there was an answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Problem { status, .. }
            | ClientError::Status { status, .. }
            | ClientError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's problem document, when it sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// Whether the server answered the problem named by `slug`
    /// (`sluice_client::slug::RATE_LIMITED`, ...).
    pub fn is(&self, slug: &str) -> bool {
        self.problem().is_some_and(|p| p.is(slug))
    }

    /// The `Retry-After` of the answer, when it had one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Problem { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The error for a failure answer: its problem document when the body
    /// is one, else the status and the start of the body.
    pub(crate) fn from_answer(
        request: String,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ClientError {
        match serde_json::from_slice::<Problem>(body) {
            Ok(problem) => ClientError::Problem {
                request,
                status,
                problem: Box::new(problem),
                retry_after,
            },
            Err(_) => {
                let end = body.len().min(MAX_BODY_IN_ERROR);
                ClientError::Status {
                    request,
                    status,
                    body: String::from_utf8_lossy(&body[..end]).into_owned(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_body_is_kept_whole() {
        let body = br#"{"type":"https://sluice.dev/problems/out-of-order-sequence","title":"Producer sequence refused","status":409,"detail":"expected 7","expected_sequence":7}"#;
        let error = ClientError::from_answer(
            "POST /v1/streams/s/records".into(),
            StatusCode::CONFLICT,
            None,
            body,
        );
        assert!(error.is(sluice_protocol::problem::slug::OUT_OF_ORDER_SEQUENCE));
        assert_eq!(
            error
                .problem()
                .and_then(|p| p.u64_member("expected_sequence")),
            Some(7)
        );
        assert_eq!(error.status(), Some(StatusCode::CONFLICT));
        assert_eq!(
            error.to_string(),
            "POST /v1/streams/s/records: 409 Conflict Producer sequence refused: expected 7"
        );
    }

    #[test]
    fn anything_else_keeps_status_and_text() {
        let error = ClientError::from_answer(
            "GET /v1/whoami".into(),
            StatusCode::BAD_GATEWAY,
            None,
            b"<html>bad gateway</html>",
        );
        assert!(error.problem().is_none());
        assert_eq!(
            error.to_string(),
            "GET /v1/whoami: 502 Bad Gateway <html>bad gateway</html>"
        );
    }
}

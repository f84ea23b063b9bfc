//! Client requests relayed to the broker serving a queue or partition, with
//! the caller's own credential: an exchange publish sends each target queue
//! hosted elsewhere its share, a produce sends each partition hosted
//! elsewhere its records, a consumer group asks another broker where a
//! partition stands. The relayed request carries the node key in
//! [`FORWARDED_BY`] (never relayed again) and, for what was already charged
//! to the tenant's rate quota here, [`CHARGED`].

use reqwest::header;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_protocol::Problem;

use super::{CHARGED, FORWARDED_BY, Peers};
use crate::error::BrokerError;

/// Whether the relayed request was already charged to the rate quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charged {
    Yes,
    No,
}

/// A relayed request's answer: the success body, or the problem the other
/// broker answered (passed through to the caller: 403 quota, 409 sequence,
/// 413 too large, 429 rate limited, ...). A 5xx, an answer that is no
/// problem document or no answer at all is [`BrokerError::Unavailable`],
/// naming `who` did not answer.
impl Peers {
    pub async fn relay_post<B: Serialize, A: DeserializeOwned>(
        &self,
        url: &str,
        path: &str,
        authorization: &str,
        charged: Charged,
        body: &B,
        who: &str,
    ) -> Result<A, BrokerError> {
        let mut request = self
            .http()
            .post(format!("{url}{path}"))
            .header(header::AUTHORIZATION, authorization)
            .header(FORWARDED_BY, self.node_key().as_str())
            .json(body);
        if charged == Charged::Yes {
            request = request.header(CHARGED, "1");
        }
        answer(request, who).await
    }

    pub async fn relay_get<A: DeserializeOwned>(
        &self,
        url: &str,
        path_and_query: &str,
        authorization: &str,
        who: &str,
    ) -> Result<A, BrokerError> {
        let request = self
            .http()
            .get(format!("{url}{path_and_query}"))
            .header(header::AUTHORIZATION, authorization)
            .header(FORWARDED_BY, self.node_key().as_str());
        answer(request, who).await
    }
}

async fn answer<A: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    who: &str,
) -> Result<A, BrokerError> {
    let answer = request
        .send()
        .await
        .map_err(|e| BrokerError::Unavailable(format!("{who} did not answer: {e}")))?;
    let status = answer.status();
    let retry_after = answer
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = answer
        .bytes()
        .await
        .map_err(|e| BrokerError::Unavailable(format!("{who} did not answer: {e}")))?;
    if !status.is_success() {
        return Err(remote_problem(status.as_u16(), retry_after, &body, who));
    }
    serde_json::from_slice(&body).map_err(|e| {
        BrokerError::Unavailable(format!(
            "{who} answered garbage: {e}: {}",
            String::from_utf8_lossy(&body)
        ))
    })
}

/// The problem another broker answered, to pass through to the caller.
/// Answers that are no problem document, and 5xx answers, become 503.
pub fn remote_problem(
    status: u16,
    retry_after_secs: Option<u64>,
    body: &[u8],
    who: &str,
) -> BrokerError {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) if status < 500 && problem.status == status => BrokerError::Remote {
            problem: Box::new(problem),
            retry_after_secs,
        },
        _ => BrokerError::Unavailable(format!(
            "{who} answered {status}: {}",
            String::from_utf8_lossy(body)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_problem_keeps_its_status_and_body() {
        let body = serde_json::json!({"type": "https://sluice.dev/problems/quota-exceeded",
            "title": "Quota exceeded", "status": 403, "detail": "full", "quota": "max_storage_bytes"});
        let err = remote_problem(403, None, body.to_string().as_bytes(), "b");
        let BrokerError::Remote { problem, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(serde_json::to_value(problem).expect("json"), body);
        let limited = remote_problem(
            429,
            Some(3),
            br#"{"type": "https://sluice.dev/problems/rate-limited", "status": 429}"#,
            "b",
        );
        assert!(matches!(
            limited,
            BrokerError::Remote {
                retry_after_secs: Some(3),
                ..
            }
        ));
        let garbage = remote_problem(500, None, br#"{"type": "x", "status": 500}"#, "b");
        assert!(matches!(garbage, BrokerError::Unavailable(_)));
        let not_a_problem = remote_problem(404, None, b"no such route", "b");
        assert!(matches!(not_a_problem, BrokerError::Unavailable(_)));
    }
}

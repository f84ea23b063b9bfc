//! Client requests relayed to the broker serving a queue or partition, with
//! the caller's own credential: an exchange publish sends each target queue
//! hosted elsewhere its share, a produce sends each partition hosted
//! elsewhere its records, a consumer group asks another broker where a
//! partition stands. Relayed requests go through the typed public client
//! (`sluice-client`) and carry the node key in [`FORWARDED_BY`] (so they are
//! never relayed again) and, for what was already charged to the tenant's
//! rate quota here, [`CHARGED`]. They are never retried here: the caller
//! sees a 429 or 503 as the hosting broker answered it.

use reqwest::header::HeaderValue;
use sluice_client::{Client, ClientError, Credential, RetryPolicy};

use super::{CHARGED, FORWARDED_BY, Peers};
use crate::error::BrokerError;

/// Whether the relayed request was already charged to the rate quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charged {
    Yes,
    No,
}

impl Peers {
    /// A client of the broker at `url` acting for the caller whose
    /// `Authorization` header is `authorization`, marked as relayed.
    pub fn relay_client(
        &self,
        url: &str,
        authorization: &str,
        charged: Charged,
    ) -> Result<Client, BrokerError> {
        let header = |name: &str, value: &str| {
            HeaderValue::try_from(value)
                .map_err(|_| BrokerError::Unauthorized(format!("{name} is not a header value")))
        };
        let mut client = Client::with_http(self.http().clone(), url)
            .with_retry(RetryPolicy::NONE)
            .with_credential(Credential::Authorization(header(
                "the Authorization header",
                authorization,
            )?))
            .with_header(
                FORWARDED_BY.parse().map_err(|_| relay_setup())?,
                header("the node key", self.node_key().as_str())?,
            );
        if charged == Charged::Yes {
            client = client.with_header(
                CHARGED.parse().map_err(|_| relay_setup())?,
                HeaderValue::from_static("1"),
            );
        }
        Ok(client)
    }
}

fn relay_setup() -> BrokerError {
    BrokerError::Internal(anyhow::anyhow!("relay header names are not valid"))
}

/// What a relayed request's failure is to this broker's caller: the problem
/// the other broker answered, passed through (403 quota, 409 sequence, 413
/// too large, 429 rate limited, ...); a 5xx, an answer that is no problem
/// document, or no answer at all is [`BrokerError::Unavailable`], naming
/// `who` did not answer.
pub fn relay_error(err: ClientError, who: &str) -> BrokerError {
    match err {
        ClientError::Problem {
            status,
            problem,
            retry_after,
            ..
        } if !status.is_server_error() => BrokerError::Remote {
            problem,
            retry_after_secs: retry_after.map(|d| d.as_secs()),
        },
        ClientError::Problem {
            status, problem, ..
        } => BrokerError::Unavailable(format!("{who} answered {status}: {}", problem.detail)),
        ClientError::Transport { source, .. } => {
            BrokerError::Unavailable(format!("{who} did not answer: {source}"))
        }
        other => BrokerError::Unavailable(format!("{who} answered: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_client::{Problem, StatusCode};

    fn problem(status: StatusCode, slug: &str) -> ClientError {
        let problem: Problem = serde_json::from_value(serde_json::json!({
            "type": format!("https://sluice.dev/problems/{slug}"),
            "title": "t", "status": status.as_u16(), "detail": "d", "quota": "max_storage_bytes"
        }))
        .expect("problem");
        ClientError::Problem {
            request: "POST /v1/queues/q/messages".into(),
            status,
            problem: Box::new(problem),
            retry_after: Some(std::time::Duration::from_secs(3)),
        }
    }

    #[test]
    fn a_relayed_problem_keeps_its_document_and_retry_after() {
        let err = relay_error(problem(StatusCode::FORBIDDEN, "quota-exceeded"), "b");
        let BrokerError::Remote {
            problem,
            retry_after_secs,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(problem.status, 403);
        assert!(problem.is("quota-exceeded"));
        assert_eq!(problem.extensions["quota"], "max_storage_bytes");
        assert_eq!(*retry_after_secs, Some(3));
    }

    #[test]
    fn server_errors_and_garbage_are_unavailable() {
        let err = relay_error(problem(StatusCode::INTERNAL_SERVER_ERROR, "internal"), "b");
        assert!(matches!(err, BrokerError::Unavailable(_)));
        let garbage = ClientError::Status {
            request: "GET /x".into(),
            status: StatusCode::NOT_FOUND,
            body: "no such route".into(),
        };
        assert!(matches!(
            relay_error(garbage, "b"),
            BrokerError::Unavailable(_)
        ));
    }
}

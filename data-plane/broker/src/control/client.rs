//! HTTP calls to the control plane's `/internal/v1` API and its JWKS.

use std::collections::BTreeMap;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::control::topology::FeedSnapshot;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control plane unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("control plane answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("the control plane does not know this node")]
    UnknownNode,
}

#[derive(Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    base: String,
    node_key: String,
}

/// The control plane's answer to a heartbeat.
#[derive(Debug, Clone, Deserialize)]
pub struct HeartbeatAck {
    /// The current topology version.
    pub version: i64,
    /// How many brokers are live, this one included; absent from a control
    /// plane that predates the count.
    #[serde(default)]
    pub live_nodes: Option<u64>,
    /// Per tenant, the bytes stored on every live broker (their latest
    /// reports summed); absent from a control plane that does not sum them.
    #[serde(default)]
    pub storage_used: Option<BTreeMap<i64, u64>>,
}

impl ControlClient {
    pub fn new(base: &str, node_key: &str) -> Result<ControlClient, ControlError> {
        // Long enough for the feed's long-poll (its wait is at most 60 s).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(75))
            .build()?;
        Ok(ControlClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            node_key: node_key.to_string(),
        })
    }

    pub async fn register(
        &self,
        node_id: &str,
        data_url: &str,
        zone: &str,
    ) -> Result<(), ControlError> {
        let response = self
            .http
            .put(format!("{}/internal/v1/nodes/{node_id}", self.base))
            .bearer_auth(&self.node_key)
            .json(&json!({ "data_url": data_url, "zone": zone }))
            .send()
            .await?;
        check(response).await.map(|_| ())
    }

    /// Reports the applied version; answers the control plane's current one
    /// and how many brokers are live.
    pub async fn heartbeat(
        &self,
        node_id: &str,
        applied_version: i64,
        storage_bytes: &BTreeMap<i64, u64>,
    ) -> Result<HeartbeatAck, ControlError> {
        let response = self
            .http
            .post(format!(
                "{}/internal/v1/nodes/{node_id}/heartbeat",
                self.base
            ))
            .bearer_auth(&self.node_key)
            .json(&json!({
                "applied_version": applied_version,
                "storage_bytes": storage_bytes,
            }))
            .send()
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ControlError::UnknownNode);
        }
        Ok(check(response).await?.json().await?)
    }

    /// Long-polls for a topology newer than `since`; `None` when none came within `wait`.
    pub async fn feed(
        &self,
        since: i64,
        wait: Duration,
    ) -> Result<Option<FeedSnapshot>, ControlError> {
        let response = self
            .http
            .get(format!(
                "{}/internal/v1/feed?since={since}&wait_ms={}",
                self.base,
                wait.as_millis()
            ))
            .bearer_auth(&self.node_key)
            .send()
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(check(response).await?.json().await?))
    }

    pub async fn jwks(&self) -> Result<JwkSet, ControlError> {
        let response = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.base))
            .send()
            .await?;
        Ok(check(response).await?.json().await?)
    }
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, ControlError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(ControlError::Status { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_answer_without_the_live_count_still_reads() {
        let ack: HeartbeatAck = serde_json::from_str(r#"{"version": 4}"#).expect("old answer");
        assert_eq!((ack.version, ack.live_nodes), (4, None));
        let ack: HeartbeatAck =
            serde_json::from_str(r#"{"version": 4, "live_nodes": 3}"#).expect("answer");
        assert_eq!(ack.live_nodes, Some(3));
    }
}

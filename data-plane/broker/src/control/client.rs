//! HTTP calls to the control plane's `/internal/v1` API and its JWKS, with
//! `sluice-protocol`'s types: the ones the control plane reads and writes.

use std::collections::BTreeMap;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use reqwest::StatusCode;
pub use sluice_protocol::node::HeartbeatAck;
use sluice_protocol::node::{Heartbeat, RegisterNode};
use sluice_protocol::{FeedUpdate, UnreadableSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control plane unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("control plane answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("the control plane does not know this node")]
    UnknownNode,
    /// A snapshot this broker cannot read (a setting of a type or value it
    /// does not know): never applied in part, nor with defaults.
    #[error(transparent)]
    UnreadableSnapshot(#[from] UnreadableSnapshot),
}

#[derive(Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    base: String,
    node_key: String,
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
        registration: &RegisterNode,
    ) -> Result<(), ControlError> {
        let response = self
            .http
            .put(format!("{}/internal/v1/nodes/{node_id}", self.base))
            .bearer_auth(&self.node_key)
            .json(registration)
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
        disk_free_bytes: Option<u64>,
    ) -> Result<HeartbeatAck, ControlError> {
        let response = self
            .http
            .post(format!(
                "{}/internal/v1/nodes/{node_id}/heartbeat",
                self.base
            ))
            .bearer_auth(&self.node_key)
            .json(&Heartbeat {
                applied_version,
                storage_bytes: storage_bytes.clone(),
                disk_free_bytes,
            })
            .send()
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ControlError::UnknownNode);
        }
        Ok(check(response).await?.json().await?)
    }

    /// Long-polls for a topology newer than `since`: the changes since it
    /// when the control plane can tell them, else a snapshot; `None` when
    /// nothing changed within `wait`.
    pub async fn feed(
        &self,
        since: i64,
        wait: Duration,
    ) -> Result<Option<FeedUpdate>, ControlError> {
        let response = self
            .http
            .get(format!(
                "{}/internal/v1/feed?since={since}&wait_ms={}&changes=true",
                self.base,
                wait.as_millis()
            ))
            .bearer_auth(&self.node_key)
            .send()
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body = check(response).await?.bytes().await?;
        Ok(Some(FeedUpdate::from_json(&body)?))
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

//! Calls to other brokers that carry no client's credential: storing a
//! message the broker republishes (a dead letter, a redrive) in a queue
//! hosted on another broker. They authenticate with the node key every
//! broker shares and land on `/internal/v1/...` (`api::internal`).
//!
//! Client requests are forwarded with the client's own credential instead
//! (`api::forward`); a dead letter has no client.

use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_queue::PublishMessage;

use crate::control::TopologyHandle;
use crate::queue::{BodyEncoding, MessageBody};

/// What `POST /internal/v1/tenants/{tenant_id}/queues/{queue}/republish`
/// carries: the message as the state machine takes it, and its body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Republish {
    pub message: PublishMessage,
    /// Base64 of the body's bytes.
    pub body: String,
    pub body_encoding: BodyEncoding,
    pub content_type: Option<String>,
}

impl Republish {
    pub fn new(message: PublishMessage, body: &MessageBody) -> Self {
        Republish {
            message,
            body: base64::engine::general_purpose::STANDARD.encode(&body.bytes),
            body_encoding: body.encoding,
            content_type: body.content_type.clone(),
        }
    }

    /// The message and its body, as sent.
    pub fn into_parts(self) -> Result<(PublishMessage, MessageBody), base64::DecodeError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&self.body)?;
        let body = MessageBody {
            bytes,
            encoding: self.body_encoding,
            content_type: self.content_type,
        };
        Ok((self.message, body))
    }
}

/// This broker's way to the others.
#[derive(Clone)]
pub struct Peers {
    node_id: String,
    node_key: Arc<String>,
    client: reqwest::Client,
    topology: TopologyHandle,
}

impl Peers {
    pub fn new(
        node_id: String,
        node_key: Arc<String>,
        client: reqwest::Client,
        topology: TopologyHandle,
    ) -> Self {
        Peers {
            node_id,
            node_key,
            client,
            topology,
        }
    }

    /// The URL of the broker hosting the tenant's `queue`, unless that is us
    /// (or nobody yet).
    fn host_of(&self, tenant_id: i64, queue: &str) -> Option<String> {
        let topology = self.topology.current();
        let placed = topology.queues.get(&(tenant_id, queue.to_string()))?;
        if placed.placement.replicas.contains(&self.node_id) {
            return None;
        }
        let host = placed.placement.replicas.first()?;
        topology.nodes.get(host).cloned()
    }

    /// Stores `message` in the tenant's `queue` on the broker hosting it.
    pub async fn republish(
        &self,
        tenant_id: i64,
        queue: &str,
        message: PublishMessage,
        body: &MessageBody,
    ) -> anyhow::Result<()> {
        let url = self
            .host_of(tenant_id, queue)
            .ok_or_else(|| anyhow::anyhow!("queue `{queue}` has no broker to take it yet"))?;
        let answer = self
            .client
            .post(format!(
                "{url}/internal/v1/tenants/{tenant_id}/queues/{queue}/republish"
            ))
            .bearer_auth(self.node_key.as_str())
            .json(&Republish::new(message, body))
            .send()
            .await?;
        let status = answer.status();
        if !status.is_success() {
            let text = answer.text().await.unwrap_or_default();
            anyhow::bail!("the broker hosting `{queue}` answered {status}: {text}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_republish_carries_the_body_byte_for_byte() {
        let message: PublishMessage = serde_json::from_value(serde_json::json!({
            "body_ref": {"log_index": 0, "slot": 1},
            "size": 3,
            "routing_key": "k",
            "priority": 7,
            "republished": true,
        }))
        .expect("message");
        let body = MessageBody {
            bytes: vec![0, 159, 255],
            encoding: BodyEncoding::Base64,
            content_type: Some("application/octet-stream".into()),
        };
        let wire = serde_json::to_string(&Republish::new(message.clone(), &body)).expect("json");
        let back: Republish = serde_json::from_str(&wire).expect("parse");
        let (message_back, body_back) = back.into_parts().expect("base64");
        assert_eq!(message_back, message);
        assert_eq!(body_back, body);
    }
}

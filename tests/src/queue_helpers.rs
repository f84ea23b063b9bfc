//! The data-plane helpers of [`Deployment`]: bindings, publish, receive,
//! ack, nack and stats through the typed client. Messages and answers stay
//! `serde_json::Value`s as the tests write and read them; answers are the
//! broker's JSON exactly as sent.

use anyhow::{Context, bail};
use serde_json::Value;
use sluice_client::control::BindingSpec;
use sluice_client::data::{
    AckRequest, ExchangePublishRequest, NackKind, NackRequest, OutgoingMessage,
    QueuePublishRequest, ReceiveRequest,
};

use crate::Deployment;

/// Messages a test wrote as JSON, as the typed client sends them.
fn outgoing(messages: Vec<Value>) -> anyhow::Result<Vec<OutgoingMessage<'static>>> {
    messages
        .into_iter()
        .map(|message| {
            serde_json::from_value(message.clone())
                .with_context(|| format!("{message} is no publishable message"))
        })
        .collect()
}

/// The receipt of a delivery a helper returned.
fn receipt(message: &Value) -> anyhow::Result<String> {
    Ok(message["receipt"]
        .as_str()
        .context("no receipt")?
        .to_string())
}

impl Deployment {
    /// Binds `queue` to exchange `source` with `routing_key` (as the tenant's admin).
    pub async fn bind(&self, source: &str, queue: &str, routing_key: &str) -> anyhow::Result<()> {
        self.declare_binding(&BindingSpec::queue(source, queue, routing_key))
            .await
    }

    /// Declares any binding (headers, weights, an exchange as destination)
    /// as the tenant's admin; `binding` is a `BindingSpec` in JSON.
    pub async fn bind_spec(&self, binding: Value) -> anyhow::Result<()> {
        let spec: BindingSpec = serde_json::from_value(binding.clone())
            .with_context(|| format!("{binding} is no binding"))?;
        self.declare_binding(&spec).await
    }

    /// Declares `spec` as the tenant's admin.
    pub async fn declare_binding(&self, spec: &BindingSpec) -> anyhow::Result<()> {
        self.api
            .as_key(&self.admin)
            .declare_binding(spec)
            .await
            .with_context(|| format!("binding {spec:?}"))?;
        Ok(())
    }

    /// Receives every ready message of `queue` (without waiting), leaving
    /// them leased.
    pub async fn drain(&self, key: &str, queue: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        loop {
            let batch = self.receive(key, queue, 100, 0).await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    /// The bodies of every ready message of `queue`, sorted.
    pub async fn bodies(&self, key: &str, queue: &str) -> anyhow::Result<Vec<String>> {
        let mut bodies: Vec<String> = self
            .drain(key, queue)
            .await?
            .iter()
            .filter_map(|m| m["body"].as_str().map(str::to_string))
            .collect();
        bodies.sort();
        Ok(bodies)
    }

    /// Publishes `messages` through `exchange`; answers the per-message results.
    pub async fn publish(
        &self,
        key: &str,
        exchange: &str,
        messages: Vec<Value>,
    ) -> anyhow::Result<Vec<Value>> {
        let request = ExchangePublishRequest {
            messages: outgoing(messages)?,
            mandatory: None,
        };
        let body: Value = self
            .data
            .as_key(key)
            .publish(exchange, &request)
            .json_as()
            .await
            .with_context(|| format!("publishing through {exchange}"))?;
        Ok(body["results"].as_array().cloned().unwrap_or_default())
    }

    /// Publishes `messages` straight to `queue`.
    pub async fn publish_to_queue(
        &self,
        key: &str,
        queue: &str,
        messages: Vec<Value>,
    ) -> anyhow::Result<Value> {
        let request = QueuePublishRequest {
            messages: outgoing(messages)?,
        };
        self.data
            .as_key(key)
            .publish_to_queue(queue, &request)
            .json_as()
            .await
            .with_context(|| format!("publishing to {queue}"))
    }

    /// Receives (pull) up to `max` messages from `queue`, waiting up to `wait_ms`.
    pub async fn receive(
        &self,
        key: &str,
        queue: &str,
        max: u32,
        wait_ms: u64,
    ) -> anyhow::Result<Vec<Value>> {
        let body: Value = self
            .data
            .as_key(key)
            .receive(queue, &ReceiveRequest::new(max, wait_ms))
            .json_as()
            .await
            .with_context(|| format!("receiving from {queue}"))?;
        Ok(body["messages"].as_array().cloned().unwrap_or_default())
    }

    /// Acks one delivery by its receipt.
    pub async fn ack(&self, key: &str, queue: &str, message: &Value) -> anyhow::Result<()> {
        let receipts = [receipt(message)?];
        let answer = self
            .data
            .as_key(key)
            .ack(queue, &AckRequest::new(&receipts[..]))
            .await
            .with_context(|| format!("ack on {queue}"))?;
        if !answer.results.first().is_some_and(|r| r.ok()) {
            bail!("ack on {queue}: {answer:?}");
        }
        Ok(())
    }

    /// Nacks one delivery (`action` as the API names it, e.g. `requeue`).
    pub async fn nack(
        &self,
        key: &str,
        queue: &str,
        message: &Value,
        action: &str,
    ) -> anyhow::Result<Value> {
        let request = NackRequest {
            receipt: receipt(message)?,
            action: Some(
                serde_json::from_value::<NackKind>(Value::from(action))
                    .with_context(|| format!("nack action {action:?}"))?,
            ),
            delay_ms: None,
        };
        self.data
            .as_key(key)
            .nack(queue, &request)
            .json_as()
            .await
            .with_context(|| format!("nack on {queue}"))
    }

    /// The queue's counters (`ready`, `unacked`, `delayed`, `outbox`, ...).
    pub async fn stats(&self, key: &str, queue: &str) -> anyhow::Result<Value> {
        self.data
            .as_key(key)
            .queue_stats(queue)
            .json_as()
            .await
            .with_context(|| format!("stats of {queue}"))
    }
}

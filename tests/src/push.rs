//! A push consumer for tests: one consume stream (Server-Sent Events) read
//! event by event with a deadline, as the push tests need.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use sluice_client::data::{ConsumeOptions, SseStream};

use crate::Api;

/// One Server-Sent Event: its `event:` name and `data:` text.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// A push consumer (`GET /v1/queues/{q}/consume`) reading the event stream.
/// Dropping it closes the connection, as a crashed consumer would.
pub struct PushConsumer {
    /// The consumer id the broker gave this connection.
    pub id: String,
    events: SseStream,
}

/// The consume options of a query string such as `prefetch=2&consumer=w-1`.
fn consume_options(query: &str) -> anyhow::Result<ConsumeOptions> {
    let mut options = ConsumeOptions::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "prefetch" => options.prefetch = Some(value.parse()?),
            "lease_ms" => options.lease_ms = Some(value.parse()?),
            "consumer" => options.consumer = Some(value.to_string()),
            _ => bail!("unknown consume parameter {name:?} in {query:?}"),
        }
    }
    Ok(options)
}

impl PushConsumer {
    /// Connects with `query` (e.g. `prefetch=1`) and waits for the broker to
    /// name the consumer.
    pub async fn connect(
        data: &Api,
        key: &str,
        queue: &str,
        query: &str,
    ) -> anyhow::Result<PushConsumer> {
        let events = data
            .client()
            .consume(queue, &consume_options(query)?)
            .bearer(key)
            .sse()
            .await
            .with_context(|| format!("consume {queue}"))?;
        let mut consumer = PushConsumer {
            id: String::new(),
            events,
        };
        let hello = consumer
            .next_event(Duration::from_secs(5))
            .await?
            .context("no consumer event")?;
        let hello: Value = serde_json::from_str(&hello.data)?;
        consumer.id = hello["consumer"].as_str().unwrap_or_default().to_string();
        Ok(consumer)
    }

    /// The next event within `timeout` (None when it passes or the stream ends).
    pub async fn next_event(&mut self, timeout: Duration) -> anyhow::Result<Option<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.next_event()).await {
                Err(_) | Ok(None) => return Ok(None),
                Ok(Some(event)) => event?,
            };
            if event.data.is_empty() {
                continue; // a keep-alive
            }
            return Ok(Some(SseEvent {
                event: event.event,
                data: event.data,
            }));
        }
    }

    /// Reads until the broker ends the stream, within `timeout`, and returns
    /// the events read on the way. Fails when `timeout` passes with the
    /// stream still open (unlike [`PushConsumer::next_event`], whose `None`
    /// cannot tell an end from a timeout) or when the stream breaks.
    pub async fn until_end(&mut self, timeout: Duration) -> anyhow::Result<Vec<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.events.next_event()).await {
                Err(_) => bail!("the stream is still open after {timeout:?}; read {seen:?}"),
                Ok(None) => return Ok(seen),
                Ok(Some(event)) => {
                    let event = event.context("the stream broke instead of ending")?;
                    if !event.data.is_empty() {
                        seen.push(SseEvent {
                            event: event.event,
                            data: event.data,
                        });
                    }
                }
            }
        }
    }

    /// Whether no message arrives within `period` (a full window stays
    /// full, a waiting consumer waits).
    pub async fn stays_quiet(&mut self, period: Duration) -> anyhow::Result<bool> {
        Ok(self.next_message(period).await?.is_none())
    }

    /// The next pushed message within `timeout`.
    pub async fn next_message(&mut self, timeout: Duration) -> anyhow::Result<Option<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await? {
                None => return Ok(None),
                Some(event) if event.event == "message" => {
                    return Ok(Some(serde_json::from_str(&event.data)?));
                }
                Some(_) => continue,
            }
        }
    }
}

//! The few messages the `queues` mode sends to see that an idle queue still
//! works: one publish with confirm, and a receive that must bring back what
//! was published (then acked, so the queue is idle and empty again).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sluice_client::Client;
use sluice_client::data::{AckRequest, OutgoingMessage, QueuePublishRequest, ReceiveRequest};

/// Long-poll of each receive: a woken queue answers well within it.
const RECEIVE_WAIT_MS: u64 = 5_000;
/// How long a receive keeps asking for the bodies it expects.
const RECEIVE_PATIENCE: Duration = Duration::from_secs(20);
/// Long enough that nothing is redelivered while a probe runs.
const LEASE_MS: u64 = 120_000;

/// Publishes `body` to `queue` and waits for the confirm (the durable
/// commit); returns how long that took.
pub async fn publish(client: &Client, queue: &str, body: &str) -> anyhow::Result<Duration> {
    let sent = Instant::now();
    let answer = client
        .publish_to_queue(
            queue,
            &QueuePublishRequest {
                messages: vec![OutgoingMessage::text(body)],
            },
        )
        .await
        .with_context(|| format!("publish to {queue}"))?;
    let took = sent.elapsed();
    match answer.results.first() {
        Some(outcome) if outcome.stored() => Ok(took),
        Some(outcome) => bail!(
            "publish to {queue}: {} ({})",
            outcome.status,
            outcome.reason.as_deref().unwrap_or("no reason")
        ),
        None => bail!("publish to {queue}: an answer without results"),
    }
}

/// Receives from `queue` until every body of `expected` came back, acks
/// everything received, and returns how long the first receive that
/// brought a message took. Fails if a body is missing after
/// [`RECEIVE_PATIENCE`] or an ack is refused.
pub async fn receive_and_ack(
    client: &Client,
    queue: &str,
    expected: &[&str],
) -> anyhow::Result<Duration> {
    let give_up = Instant::now() + RECEIVE_PATIENCE;
    let request = ReceiveRequest {
        max_messages: Some(10),
        wait_ms: Some(RECEIVE_WAIT_MS),
        lease_ms: Some(LEASE_MS),
        consumer: None,
    };
    let mut missing: Vec<&str> = expected.to_vec();
    let mut first = None;
    while !missing.is_empty() {
        if Instant::now() >= give_up {
            bail!("receive from {queue}: {missing:?} did not come back");
        }
        let sent = Instant::now();
        let answer = client
            .receive(queue, &request)
            .await
            .with_context(|| format!("receive from {queue}"))?;
        if answer.messages.is_empty() {
            continue;
        }
        first.get_or_insert(sent.elapsed());
        missing.retain(|body| !answer.messages.iter().any(|m| m.body == *body));
        let receipts: Vec<String> = answer.messages.into_iter().map(|m| m.receipt).collect();
        let acked = client
            .ack(queue, &AckRequest::new(receipts.as_slice()))
            .await
            .with_context(|| format!("ack on {queue}"))?;
        let refused = acked.results.iter().filter(|r| !r.ok()).count();
        if refused > 0 {
            bail!("ack on {queue}: {refused} of {} refused", receipts.len());
        }
    }
    first.context("nothing was expected")
}

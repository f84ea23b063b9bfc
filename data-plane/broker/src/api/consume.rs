//! Push consumers: `GET /v1/queues/{q}/consume?prefetch=N&lease_ms=&consumer=`
//! (`consume` scope) streams messages as Server-Sent Events.
//!
//! The first event, `consumer`, names the consumer id the broker gave this
//! connection (`{"consumer": ..., "prefetch": N}`). Without `consumer=` it
//! is `push-<key id>-<random>`: every connection is a consumer of its own,
//! as every RabbitMQ channel consumer has its own consumer tag, and never
//! the same consumer as a pull `receive` with the same key (whose default
//! is the key id) — else closing the stream would requeue what the pull
//! consumer holds. Then every `message`
//! event carries one message as `POST /receive` returns it, `receipt`
//! included. Settle them through `POST /v1/queues/{q}/ack` and `/nack` with
//! that receipt: the broker sends at most `prefetch` unacked messages to a
//! connection (fair dispatch, see [`super::dispatch`]). A message still
//! unacked when its lease (`lease_ms`, default the queue's) runs out goes
//! back to the queue; so does everything the connection held when it
//! closes, marked `redelivered`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::dispatch::{Join, Membership};
use super::messages::ReceivedMessage;
use super::openapi::ProblemResponses;
use super::query::QueryParams;
use super::queues::{MAX_LEASE_MS, queue_group};
use super::{BrokerState, CallerAuth};
use crate::error::{BrokerError, BrokerResult};

/// Largest prefetch window of one push consumer.
pub const MAX_PREFETCH: u32 = 1000;
/// How often an idle stream sends a comment: a closed connection is noticed
/// (and its messages requeued) on the next write.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsumeParams {
    #[serde(default)]
    prefetch: Option<u32>,
    #[serde(default)]
    lease_ms: Option<u64>,
    /// Consumer id, 1 to 200 characters (default: `push-<key id>-<random>`,
    /// new for every connection, so never the same consumer as another
    /// stream or a pull `receive` with the same key). A name already
    /// streaming on the queue gets a `#2`, `#3`, ... suffix.
    #[serde(default)]
    consumer: Option<String>,
}

/// Push consumer: a Server-Sent Events stream. The first event (`consumer`)
/// names the consumer; each `message` event carries one leased message (as
/// `receive` returns it). At most `prefetch` messages are unacked at once;
/// ack or nack them with their receipts. Closing the stream requeues what
/// it held (redelivered).
#[utoipa::path(get, path = "/v1/queues/{queue}/consume", tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), ConsumeParams),
    responses(
        (status = 200, description = "`text/event-stream`: `consumer` then `message` events", content_type = "text/event-stream", body = String),
        ProblemResponses
    ),
    security(("bearer" = [])))]
pub async fn consume(
    State(state): State<BrokerState>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    QueryParams(params): QueryParams<ConsumeParams>,
) -> BrokerResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require("consume")?;
    let group = queue_group(&state, &caller, &name)?;
    let prefetch = params.prefetch.unwrap_or(10);
    if !(1..=MAX_PREFETCH).contains(&prefetch) {
        return Err(BrokerError::validation(
            "prefetch",
            "range",
            format!("must be between 1 and {MAX_PREFETCH}"),
        ));
    }
    if let Some(ms) = params.lease_ms
        && (ms == 0 || ms > MAX_LEASE_MS)
    {
        return Err(BrokerError::validation(
            "lease_ms",
            "range",
            format!("must be between 1 and {MAX_LEASE_MS}"),
        ));
    }
    let consumer_name = params
        .consumer
        .unwrap_or_else(|| default_consumer_name(&caller.key_id));
    if consumer_name.is_empty() || consumer_name.len() > 200 {
        return Err(BrokerError::validation(
            "consumer",
            "length",
            "between 1 and 200 characters",
        ));
    }
    let (deliveries, inbox) = mpsc::channel(prefetch as usize);
    let join = Join {
        name: consumer_name,
        prefetch,
        lease_ms: params.lease_ms,
        deliveries,
    };
    let (consumer, membership) = state
        .dispatchers
        .join(&state.groups, group, join)
        .await
        .map_err(BrokerError::Unavailable)?;
    tracing::debug!(queue = %name, consumer = %consumer.0, prefetch, "push consumer joined");
    let hello = Event::default()
        .event("consumer")
        .data(json!({"consumer": consumer.0, "prefetch": prefetch}).to_string());
    let messages = futures_util::stream::unfold(
        (inbox, membership),
        |(mut inbox, membership): (mpsc::Receiver<ReceivedMessage>, Membership)| async move {
            let message = inbox.recv().await?;
            Some((Ok(event(&message)), (inbox, membership)))
        },
    );
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(hello) }),
        messages,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// A push connection's own consumer id: random, so neither two streams
/// (on this broker or after a restart, when the queue may still list the
/// old ones) nor a pull consumer with the key's default id share it.
fn default_consumer_name(key_id: &str) -> String {
    let tag: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    format!("push-{key_id}-{}", tag.to_ascii_lowercase())
}

fn event(message: &ReceivedMessage) -> Event {
    let data = serde_json::to_string(message).unwrap_or_else(|_| "{}".into());
    Event::default()
        .event("message")
        .id(message.receipt.clone())
        .data(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_consumers_get_their_own_ids_never_the_pull_default() {
        let first = default_consumer_name("abc123");
        let second = default_consumer_name("abc123");
        assert_ne!(first, second);
        for id in [&first, &second] {
            assert!(id.starts_with("push-abc123-"), "{id}");
            assert_ne!(id, "abc123", "the pull default is the key id");
            assert!(id.len() <= 200);
        }
    }
}

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
//! connection (fair dispatch, see [`crate::queue::dispatch`]). A message still
//! unacked when its lease (`lease_ms`, default the queue's) runs out goes
//! back to the queue; so does everything the connection held when it
//! closes, marked `redelivered`.
//!
//! The caller is authenticated when the stream opens and checked again on
//! every topology snapshot and every second: once its key is revoked or
//! expires, its tenant is suspended or the key loses the `consume` scope,
//! the stream ends with an `error` event (the problem document), and what
//! it held goes back to the queue as on any disconnect.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::{Interval, MissedTickBehavior};

use super::CallerAuth;
use super::lookup::queue_group;
use super::messages::ReceivedMessage;
use super::problem::ProblemResponses;
use super::query::QueryParams;
use crate::admission::auth::{self, Caller};
use crate::control::TopologyHandle;
use crate::control::topology::Topology;
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;
use crate::queue::Delivered;
use crate::queue::MAX_LEASE_MS;
use crate::queue::dispatch::{Join, Membership};

/// Largest prefetch window of one push consumer.
pub const MAX_PREFETCH: u32 = 1000;
/// How often an idle stream sends a comment: a closed connection is noticed
/// (and its messages requeued) on the next write.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// How often an open stream checks its caller again even when no topology
/// snapshot arrived (an API key's or a token's expiry is a time, not a snapshot).
const RECHECK: Duration = Duration::from_secs(1);

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
/// it held (redelivered). The stream ends with an `error` event (a problem
/// document) within seconds of the key being revoked, expiring or losing
/// the `consume` scope, or of the tenant being suspended; what it held is
/// requeued then too.
#[utoipa::path(get, path = "/v1/queues/{queue}/consume", tag = "consume",
    params(("queue" = String, Path, description = "Queue name"), ConsumeParams),
    responses(
        (status = 200, description = "`text/event-stream`: `consumer` then `message` events", content_type = "text/event-stream", body = String),
        ProblemResponses
    ),
    security(("bearer" = [])))]
pub async fn consume(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    QueryParams(params): QueryParams<ConsumeParams>,
) -> BrokerResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require("consume")?;
    let group = queue_group(&state, &caller, &name).await?;
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
    // Held for as long as the stream is open (it moves into the stream).
    let waiting = state.waiters.enter(caller.tenant_id)?;
    let (deliveries, inbox) = mpsc::channel(prefetch as usize);
    let join = Join {
        name: consumer_name,
        prefetch,
        lease_ms: params.lease_ms,
        deliveries,
    };
    let (consumer, membership) = state
        .dispatchers
        .join(&state.queues, group, join)
        .await
        .map_err(BrokerError::Unavailable)?;
    tracing::debug!(queue = %name, consumer = %consumer.0, prefetch, "push consumer joined");
    let hello = Event::default()
        .event("consumer")
        .data(json!({"consumer": consumer.0, "prefetch": prefetch}).to_string());
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let open = OpenStream {
        inbox,
        membership,
        changes: Some(state.topology.subscribe()),
        topology: state.topology.clone(),
        caller,
        recheck,
        _waiting: waiting,
    };
    let messages = futures_util::stream::unfold(Some(open), |open| async move {
        let mut open = open?;
        match open.next().await {
            Ok(Some(message)) => Some((Ok(event(&message)), Some(open))),
            Ok(None) => None,
            Err(err) => {
                tracing::debug!(consumer = %open.membership.consumer().0, error = %err, "push stream ends: its caller may no longer consume");
                // Dropping the stream's state first ends the consumer, so
                // its messages are on their way back before the client
                // reads the reason.
                drop(open);
                let last = Event::default().event("error").data(err.problem_json());
                Some((Ok(last), None))
            }
        }
    });
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

/// What an open push stream holds between two events.
struct OpenStream {
    inbox: mpsc::Receiver<Delivered>,
    /// Leaves the dispatch (requeueing what the consumer holds) when dropped.
    membership: Membership,
    /// Topology snapshots; None once the follower stopped sending them.
    changes: Option<watch::Receiver<Arc<Topology>>>,
    topology: TopologyHandle,
    caller: Caller,
    recheck: Interval,
    /// Counts against the tenant's cap on open streams until the stream ends.
    _waiting: crate::admission::waiting::Waiting,
}

impl OpenStream {
    /// The next message for the consumer; None when the dispatcher closed
    /// the stream (queue deleted), an error once the caller may no longer
    /// consume.
    async fn next(&mut self) -> Result<Option<ReceivedMessage>, BrokerError> {
        let OpenStream {
            inbox,
            changes,
            topology,
            caller,
            recheck,
            ..
        } = self;
        loop {
            tokio::select! {
                message = inbox.recv() => {
                    return Ok(message.map(|m| ReceivedMessage::new(m.receipt, m.delivery, &m.body)));
                }
                _ = recheck.tick() => {}
                changed = async {
                    match changes.as_mut() {
                        Some(changes) => changes.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if !changed {
                        *changes = None;
                    }
                }
            }
            auth::recheck(&topology.current(), caller, "consume")?;
        }
    }
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

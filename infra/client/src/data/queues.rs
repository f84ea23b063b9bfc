//! The queue API of the brokers: publish (to a queue or through an
//! exchange), receive (long-poll), ack, nack, extend, peek, purge, stats,
//! redrive, and `whoami`. Each method's 503 retry choice follows
//! [`crate::retry`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::messages::{OutgoingMessage, PeekedMessage, ReceivedMessage};
use crate::call::Call;
use crate::client::Client;
use crate::path::Path;

/// `POST /v1/queues/{q}/messages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuePublishRequest<'a> {
    pub messages: Vec<OutgoingMessage<'a>>,
}

/// One message's outcome of a queue publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishOutcome {
    /// `stored`, `duplicate` (the dedup window held its id) or `failed`.
    pub status: String,
    /// Queues holding it (0 or 1).
    pub queues: u32,
    /// Why it failed (`reject-publish` on a full queue, ...).
    #[serde(default)]
    pub reason: Option<String>,
}

impl PublishOutcome {
    pub fn stored(&self) -> bool {
        self.status == "stored"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePublishResponse {
    pub results: Vec<PublishOutcome>,
}

/// `POST /v1/exchanges/{x}/publish`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangePublishRequest<'a> {
    pub messages: Vec<OutgoingMessage<'a>>,
    /// Report messages no binding routes as `returned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandatory: Option<bool>,
}

/// A target queue that did not store a message of an exchange publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedQueue {
    pub queue: String,
    pub error: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One message's outcome of an exchange publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedOutcome {
    /// `routed`, `unroutable` or `failed`.
    pub status: String,
    pub routed: u32,
    pub unroutable: bool,
    #[serde(default)]
    pub returned: bool,
    pub queues: Vec<String>,
    #[serde(default)]
    pub duplicate: Vec<String>,
    #[serde(default)]
    pub failed: Vec<FailedQueue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangePublishResponse {
    pub results: Vec<RoutedOutcome>,
}

/// `POST /v1/queues/{q}/receive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    /// 1–100 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u32>,
    /// Long-poll up to this long when nothing is ready (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Default: the queue's `lease_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Consumer id (default: the key id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

impl ReceiveRequest {
    pub fn new(max_messages: u32, wait_ms: u64) -> ReceiveRequest {
        ReceiveRequest {
            max_messages: Some(max_messages),
            wait_ms: Some(wait_ms),
            ..ReceiveRequest::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiveResponse {
    pub messages: Vec<ReceivedMessage>,
}

/// `POST /v1/queues/{q}/ack`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest<'a> {
    pub receipts: Cow<'a, [String]>,
}

impl<'a> AckRequest<'a> {
    pub fn new(receipts: impl Into<Cow<'a, [String]>>) -> AckRequest<'a> {
        AckRequest {
            receipts: receipts.into(),
        }
    }
}

/// One receipt's outcome of an ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckResult {
    pub receipt: String,
    /// `ok` or `error`.
    pub status: String,
    /// `stale` (lease gone), ...
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl AckResult {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckResponse {
    pub results: Vec<AckResult>,
}

/// What a nack does with the delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NackKind {
    /// Back to the queue after the retry backoff.
    #[default]
    Requeue,
    RequeueNow,
    /// Back after `delay_ms`.
    RequeueAfter,
    DeadLetter,
}

/// `POST /v1/queues/{q}/nack`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    pub receipt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<NackKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackResponse {
    pub receipt: String,
    pub outcome: String,
    #[serde(default)]
    pub due_ms: Option<u64>,
}

/// `POST /v1/queues/{q}/extend`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    pub receipt: String,
    pub lease_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendResponse {
    pub receipt: String,
    pub lease_deadline_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeekResponse {
    pub messages: Vec<PeekedMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeResponse {
    pub purged: u64,
}

/// Messages/s over the last 10 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub publish: f64,
    pub deliver: f64,
    pub ack: f64,
    pub redeliver: f64,
    pub dead_letter: f64,
}

/// `GET /v1/queues/{q}/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStatsResponse {
    pub queue: String,
    pub ready: u64,
    pub unacked: u64,
    pub delayed: u64,
    pub ready_bytes: u64,
    /// Dead letters and redrives not yet republished.
    pub outbox: u64,
    /// Unacked messages per consumer.
    pub consumers: BTreeMap<String, u64>,
    pub rates: Rates,
    /// Dead letters the queue's dead-letter exchange routed nowhere.
    pub dead_letters_dropped: u64,
    #[serde(default)]
    pub active_consumer: Option<String>,
}

/// `POST /v1/queues/{q}/redrive`: move dead letters on (default: back to
/// where each came from).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    pub max_messages: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_exchange: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_queue: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedrivenMessage {
    #[serde(default)]
    pub message_id: Option<String>,
    pub status: String,
    #[serde(default)]
    pub queues: Option<Vec<String>>,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveResponse {
    pub redriven: u64,
    pub failed: u64,
    pub messages: Vec<RedrivenMessage>,
}

/// `GET /v1/whoami`: the caller as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub tenant: String,
    pub key_id: String,
    pub scopes: Vec<String>,
    pub node_id: String,
    pub topology_version: i64,
}

fn queue_path(queue: &str, action: &str) -> String {
    Path::new("/v1/queues").seg(queue).lit(action).finish()
}

impl Client {
    /// `POST /v1/queues/{q}/messages`: answers after the durable commit.
    /// Not retried on 503 (it may have been stored).
    pub fn publish_to_queue(
        &self,
        queue: &str,
        request: &QueuePublishRequest<'_>,
    ) -> Call<QueuePublishResponse> {
        Call::new(self, Method::POST, queue_path(queue, "messages")).json(request)
    }

    /// `POST /v1/exchanges/{x}/publish`. Not retried on 503.
    pub fn publish(
        &self,
        exchange: &str,
        request: &ExchangePublishRequest<'_>,
    ) -> Call<ExchangePublishResponse> {
        let path = Path::new("/v1/exchanges")
            .seg(exchange)
            .lit("publish")
            .finish();
        Call::new(self, Method::POST, path).json(request)
    }

    /// `POST /v1/queues/{q}/receive`. Not retried on 503 (a lost answer's
    /// messages stay leased to nobody until their lease ends).
    pub fn receive(&self, queue: &str, request: &ReceiveRequest) -> Call<ReceiveResponse> {
        Call::new(self, Method::POST, queue_path(queue, "receive")).json(request)
    }

    /// `POST /v1/queues/{q}/ack`. Not retried on 503 (a repeat answers `stale`).
    pub fn ack(&self, queue: &str, request: &AckRequest<'_>) -> Call<AckResponse> {
        Call::new(self, Method::POST, queue_path(queue, "ack")).json(request)
    }

    /// `POST /v1/queues/{q}/nack`. Not retried on 503.
    pub fn nack(&self, queue: &str, request: &NackRequest) -> Call<NackResponse> {
        Call::new(self, Method::POST, queue_path(queue, "nack")).json(request)
    }

    /// `POST /v1/queues/{q}/extend`: sets the lease, so safe to repeat.
    pub fn extend(&self, queue: &str, request: &ExtendRequest) -> Call<ExtendResponse> {
        Call::new(self, Method::POST, queue_path(queue, "extend"))
            .json(request)
            .retry_unavailable(true)
    }

    /// `GET /v1/queues/{q}/peek?max=`: ready messages, not leased.
    pub fn peek(&self, queue: &str, max: Option<u32>) -> Call<PeekResponse> {
        let path = Path::new("/v1/queues")
            .seg(queue)
            .lit("peek")
            .query("max", max)
            .finish();
        Call::new(self, Method::GET, path)
    }

    /// `POST /v1/queues/{q}/purge`: removes the ready messages. Not retried on 503.
    pub fn purge(&self, queue: &str) -> Call<PurgeResponse> {
        Call::new(self, Method::POST, queue_path(queue, "purge"))
    }

    /// `GET /v1/queues/{q}/stats`.
    pub fn queue_stats(&self, queue: &str) -> Call<QueueStatsResponse> {
        Call::new(self, Method::GET, queue_path(queue, "stats"))
    }

    /// `POST /v1/queues/{q}/redrive`. Not retried on 503.
    pub fn redrive(&self, queue: &str, request: &RedriveRequest) -> Call<RedriveResponse> {
        Call::new(self, Method::POST, queue_path(queue, "redrive")).json(request)
    }

    /// `GET /v1/whoami`.
    pub fn whoami(&self) -> Call<WhoAmI> {
        Call::new(self, Method::GET, "/v1/whoami".into())
    }
}

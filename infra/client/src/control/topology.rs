//! A tenant's topology: exchanges, queues, bindings, streams. Declares are
//! `PUT`s (bindings: `POST`, identified by what they match) answering 201,
//! 200 or 202 ([`Change`]) and 409 `declare-conflict` with `differences`;
//! reads return every setting with defaults filled in, so the spec types
//! double as the settings of a read resource (every field then set).

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{Change, DeleteOptions, Deleted, Page, PageRequest, change};
use crate::call::Call;
use crate::client::Client;
use crate::path::Path;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExchangeType {
    #[default]
    Direct,
    Fanout,
    Topic,
    Headers,
    ConsistentHash,
}

/// `PUT /v1/exchanges/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSpec {
    #[serde(rename = "type")]
    pub kind: ExchangeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternate_exchange: Option<String>,
    /// Consistent-hash exchanges: hash this header instead of the routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_header: Option<String>,
}

impl ExchangeSpec {
    pub fn of(kind: ExchangeType) -> ExchangeSpec {
        ExchangeSpec {
            kind,
            ..ExchangeSpec::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub name: String,
    #[serde(flatten)]
    pub spec: ExchangeSpec,
    pub topology_version: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
    DeadLetter,
}

/// Redelivery delays growing with the delivery count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBackoff {
    pub initial_delay_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    pub max_delay_ms: u64,
}

/// `PUT /v1/queues/{name}`; unset fields take the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ttl_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<Overflow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_exchange: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_routing_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryBackoff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_window_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_active_consumer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_groups: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

/// Messages/s over the last 10 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRates {
    pub publish: f64,
    pub deliver: f64,
    pub ack: f64,
    pub redeliver: f64,
    pub dead_letter: f64,
}

/// A queue's depth, consumers and rates, as its broker reported them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    pub ready: i64,
    pub unacked: i64,
    pub delayed: i64,
    pub ready_bytes: i64,
    pub consumers: i64,
    pub rates: QueueRates,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub name: String,
    #[serde(flatten)]
    pub spec: QueueSpec,
    pub topology_version: i64,
    pub created_at: String,
    /// Absent when the hosting broker did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<QueueStats>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationType {
    #[default]
    Queue,
    Exchange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderMatch {
    All,
    Any,
}

/// `POST /v1/bindings`: what a binding matches and where it leads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_type: Option<DestinationType>,
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Headers exchanges: the values to match (compared as text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub header_match: Option<HeaderMatch>,
    /// Consistent-hash exchanges: this binding's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

impl BindingSpec {
    /// Binds queue `destination` to exchange `source` with `routing_key`.
    pub fn queue(source: &str, destination: &str, routing_key: &str) -> BindingSpec {
        BindingSpec {
            source: source.to_string(),
            destination: destination.to_string(),
            routing_key: Some(routing_key.to_string()),
            ..BindingSpec::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub id: String,
    #[serde(flatten)]
    pub spec: BindingSpec,
    pub topology_version: i64,
    pub created_at: String,
}

/// `GET /v1/bindings` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindingFilter {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub page: PageRequest,
}

/// `PUT /v1/streams/{name}`; unset fields take the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_retention_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_retention_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
}

impl StreamSpec {
    pub fn partitions(partitions: u32) -> StreamSpec {
        StreamSpec {
            partitions: Some(partitions),
            ..StreamSpec::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub name: String,
    #[serde(flatten)]
    pub spec: StreamSpec,
    pub topology_version: i64,
    pub created_at: String,
}

fn delete_path(collection: &str, name: &str, options: &DeleteOptions) -> String {
    Path::new(collection)
        .seg(name)
        .query("if_unused", options.if_unused.then_some(true))
        .query("if_empty", options.if_empty.then_some(true))
        .finish()
}

impl Client {
    /// `PUT /v1/exchanges/{name}`.
    pub fn declare_exchange(&self, name: &str, spec: &ExchangeSpec) -> Call<Change<Exchange>> {
        let path = Path::new("/v1/exchanges").seg(name).finish();
        Call::decoded(self, Method::PUT, path, change::<Exchange>).json(spec)
    }

    /// `GET /v1/exchanges/{name}`.
    pub fn exchange(&self, name: &str) -> Call<Exchange> {
        Call::new(
            self,
            Method::GET,
            Path::new("/v1/exchanges").seg(name).finish(),
        )
    }

    /// `GET /v1/exchanges`.
    pub fn list_exchanges(&self, page: &PageRequest) -> Call<Page<Exchange>> {
        Call::new(
            self,
            Method::GET,
            Path::new("/v1/exchanges").page(page).finish(),
        )
    }

    /// `DELETE /v1/exchanges/{name}` (its bindings go with it).
    pub fn delete_exchange(&self, name: &str, options: &DeleteOptions) -> Call<Change<Deleted>> {
        let path = delete_path("/v1/exchanges", name, options);
        Call::decoded(self, Method::DELETE, path, change::<Deleted>)
    }

    /// `PUT /v1/queues/{name}`.
    pub fn declare_queue(&self, name: &str, spec: &QueueSpec) -> Call<Change<Queue>> {
        let path = Path::new("/v1/queues").seg(name).finish();
        Call::decoded(self, Method::PUT, path, change::<Queue>).json(spec)
    }

    /// `GET /v1/queues/{name}`, with the hosting broker's stats.
    pub fn queue(&self, name: &str) -> Call<Queue> {
        Call::new(
            self,
            Method::GET,
            Path::new("/v1/queues").seg(name).finish(),
        )
    }

    /// `GET /v1/queues`.
    pub fn list_queues(&self, page: &PageRequest) -> Call<Page<Queue>> {
        Call::new(
            self,
            Method::GET,
            Path::new("/v1/queues").page(page).finish(),
        )
    }

    /// `DELETE /v1/queues/{name}`.
    pub fn delete_queue(&self, name: &str, options: &DeleteOptions) -> Call<Change<Deleted>> {
        let path = delete_path("/v1/queues", name, options);
        Call::decoded(self, Method::DELETE, path, change::<Deleted>)
    }

    /// `POST /v1/bindings`: a declare, so safe to repeat after a 503.
    pub fn declare_binding(&self, spec: &BindingSpec) -> Call<Change<Binding>> {
        Call::decoded(self, Method::POST, "/v1/bindings".into(), change::<Binding>)
            .json(spec)
            .retry_unavailable(true)
    }

    /// `GET /v1/bindings/{id}`.
    pub fn binding(&self, id: &str) -> Call<Binding> {
        Call::new(
            self,
            Method::GET,
            Path::new("/v1/bindings").seg(id).finish(),
        )
    }

    /// `GET /v1/bindings`, optionally of one source or destination.
    pub fn list_bindings(&self, filter: &BindingFilter) -> Call<Page<Binding>> {
        let path = Path::new("/v1/bindings")
            .query("source", filter.source.as_deref())
            .query("destination", filter.destination.as_deref())
            .page(&filter.page)
            .finish();
        Call::new(self, Method::GET, path)
    }

    /// `DELETE /v1/bindings/{id}`.
    pub fn delete_binding(&self, id: &str) -> Call<Change<Deleted>> {
        let path = Path::new("/v1/bindings").seg(id).finish();
        Call::decoded(self, Method::DELETE, path, change::<Deleted>)
    }

    /// `PUT /v1/streams/{name}`.
    pub fn declare_stream(&self, name: &str, spec: &StreamSpec) -> Call<Change<Stream>> {
        let path = Path::new("/v1/streams").seg(name).finish();
        Call::decoded(self, Method::PUT, path, change::<Stream>).json(spec)
    }

    /// `GET /v1/streams/{name}`.
    pub fn stream(&self, name: &str) -> Call<Stream> {
        Call::new(
            self,
            Method::GET,
            Path::new("/v1/streams").seg(name).finish(),
        )
    }

    /// `GET /v1/streams`.
    pub fn list_streams(&self, page: &PageRequest) -> Call<Page<Stream>> {
        Call::new(
            self,
            Method::GET,
            Path::new("/v1/streams").page(page).finish(),
        )
    }

    /// `DELETE /v1/streams/{name}`.
    pub fn delete_stream(&self, name: &str) -> Call<Change<Deleted>> {
        let path = Path::new("/v1/streams").seg(name).finish();
        Call::decoded(self, Method::DELETE, path, change::<Deleted>)
    }
}

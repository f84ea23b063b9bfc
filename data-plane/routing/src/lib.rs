//! Exchange routing: how a publish to one of a tenant's exchanges becomes a set of
//! queues. Pure and synchronous — no I/O, no async, no clocks — so every broker that
//! holds the same topology routes every message the same way.
//!
//! The broker builds one [`Router`] per tenant from the control plane's topology
//! feed ([`Exchange`], [`Binding`], queue names) with [`Router::build`], shares it
//! behind an `Arc`, and rebuilds it when the topology version changes. Then
//! [`Router::route`] answers, for each message, which queues get a copy.
//!
//! Semantics are RabbitMQ's:
//!
//! - **default exchange** (`default`): every queue is implicitly bound under its own
//!   name; it routes to the queue the routing key names. It cannot be declared,
//!   bound from or to, and has no alternate exchange.
//! - **direct**: a binding matches when its key equals the routing key.
//! - **fanout**: every binding matches; keys are ignored.
//! - **topic**: dot-separated words; `*` matches one word, `#` zero or more
//!   ([`topic`], a trie, so cost does not grow with the number of bindings).
//! - **headers**: `match: all` (default) or `any` over the binding's headers, values
//!   compared as typed JSON ([`headers`]).
//! - **consistent-hash**: exactly one destination per message, chosen on a weighted
//!   hash ring by the routing key or by the exchange's `hash_header`; a message
//!   without that header matches nothing ([`consistent_hash`]).
//! - **exchange-to-exchange** bindings are followed; each exchange is walked at most
//!   once per message, so cycles end and every queue gets at most one copy.
//! - **alternate exchange**: an exchange whose bindings match nothing hands the
//!   message to its alternate exchange, walked like a bound exchange (cycle-safe);
//!   [`Route::alternate_used`] says it happened.
//! - **internal** exchanges refuse direct publishes ([`RouteError::InternalExchange`])
//!   but are routed through from other exchanges and as alternate exchanges.
//! - [`Route::unroutable`]: no queue at all in the end.

pub mod consistent_hash;
pub mod headers;
pub mod settings;
pub mod topic;
pub mod topology;

mod build;
mod router;

pub use build::TopologyIssue;
pub use router::{Route, RouteError, Router};
pub use settings::{InvalidSetting, validate_topic_key};
pub use topology::{
    Binding, BindingSpec, DEFAULT_EXCHANGE, DestinationType, Exchange, ExchangeSpec, ExchangeType,
    HeaderMatch, Headers,
};

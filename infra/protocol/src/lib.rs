//! `sluice-protocol`: every type that crosses a process boundary between
//! Sluice's own processes, declared once so that the two sides cannot drift.
//!
//! - [`feed`]: the topology feed snapshot brokers follow, with the tenants'
//!   quotas, the key verifiers, and the typed settings of exchanges, queues,
//!   bindings and streams — the domain crates' own types
//!   ([`sluice_queue::QueueSettings`], [`sluice_stream::StreamSettings`],
//!   [`sluice_routing::ExchangeSpec`], [`sluice_routing::BindingSpec`]),
//!   which the control plane validates and stores as they are.
//! - [`placement`]: which nodes hold a Raft group's replicas.
//! - [`node`]: a broker's registration, heartbeat and the answer to it.
//! - [`peer`]: broker-to-broker payloads (republished messages, stream
//!   bounds) and the queue stats the control plane reads from brokers.
//! - [`json_body`]: the one rule both planes read JSON request bodies by
//!   (`Content-Type`, empty bodies, duplicate keys).
//! - [`routes`]: which plane serves which public route, so a request sent
//!   to the wrong one is told where to go.
//! - [`http_server`] (feature `axum`): the HTTP server both planes run, with
//!   the request-head limits answered as problems.
//! - [`problem`]: the RFC 7807 problem document both planes answer with and
//!   the stable problem types (`https://sluice.dev/problems/<slug>`) clients
//!   branch on.
//!
//! With the `openapi` feature every type that appears in the control plane's
//! OpenAPI document derives its schema, under the name the document uses.

pub mod feed;
#[cfg(feature = "axum")]
pub mod http_server;
pub mod json_body;
pub mod node;
pub mod peer;
pub mod placement;
pub mod problem;
pub mod routes;

pub use feed::{FeedChanges, FeedSnapshot, FeedUpdate, UnreadableSnapshot};
pub use placement::Placement;
pub use problem::Problem;

//! `sluice-client`: the one typed client of Sluice's public HTTP APIs, used
//! by the load generator, the end-to-end tests and broker-to-broker
//! forwarding, so that none of them builds request JSON by hand.
//!
//! - [`Client`]: a base URL, a credential (API key, JWT, operator or node
//!   key, or a caller's `Authorization` value passed through), extra headers
//!   and a [`RetryPolicy`]; clones are cheap and share one connection pool.
//! - Every API method returns a [`Call`]: a request that can still take
//!   per-request headers, credential, base URL, timeout or retry policy, and
//!   is sent by `.await`ing it.
//! - [`control`]: tenants, quotas, API keys, tokens, exchanges, queues,
//!   bindings, streams, nodes, topology status (the control plane).
//! - [`data`]: publish, receive, ack, nack, extend, peek, purge, stats,
//!   redrive, push consume (SSE), stream produce and fetch (JSON or stored
//!   batches), producer ids, consumer groups, whoami (the brokers).
//! - Failures are a [`ClientError`]; a server's problem document is kept
//!   whole as a [`sluice_protocol::Problem`].
//!
//! Retries: see [`retry`] for which requests are retried and when.

mod call;
mod client;
pub mod control;
pub mod data;
mod error;
mod path;
pub mod retry;

pub use call::{Answer, Call};
pub use client::{Client, Credential};
pub use error::ClientError;
pub use retry::RetryPolicy;
pub use sluice_protocol::Problem;
pub use sluice_protocol::problem::slug;

/// The HTTP types call sites need ([`Method`](reqwest::Method),
/// [`StatusCode`](reqwest::StatusCode), header names and values).
pub use reqwest::{Method, StatusCode, header};

//! Integration tests of the control plane's REST API: a real server on a loopback port,
//! real HTTP, a fresh Postgres database per test.

mod api_keys;
mod audit;
mod bindings;
mod capacity;
mod contract;
mod exchanges;
mod feed_changes;
mod framework_errors;
mod health;
mod nul_bytes;
mod queues;
mod quotas;
mod storage;
mod streams;
mod support;
mod tenants;
mod tokens;

//! The other brokers: which broker hosts (and leads) a group
//! ([`placement`]), the node key that proves a call comes from a broker,
//! and the one way to call them ([`peers`]: node-key calls of our own, and
//! client requests relayed with the caller's credential).

pub mod peers;
pub mod placement;
pub mod relay;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use peers::Peers;

/// Marks a request relayed by a broker; its value is the node key.
pub const FORWARDED_BY: &str = "x-sluice-forwarded-by";

/// Set (with the node key as proof) when the messages were already charged
/// to the tenant's rate quota by the broker that relays them.
pub const CHARGED: &str = "x-sluice-charged";

/// The key every broker of the deployment shares with the control plane.
#[derive(Clone)]
pub struct NodeKey {
    key: Arc<String>,
    sha256: Arc<[u8]>,
}

impl NodeKey {
    pub fn new(key: &str) -> NodeKey {
        NodeKey {
            key: Arc::new(key.to_string()),
            sha256: Sha256::digest(key.as_bytes()).to_vec().into(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// Whether `presented` is the node key (compared in constant time).
    pub fn proves(&self, presented: &str) -> bool {
        Sha256::digest(presented.as_bytes())
            .as_slice()
            .ct_eq(&self.sha256)
            .into()
    }

    /// Whether `headers` mark a request relayed by a broker.
    pub fn forwarded(&self, headers: &http::HeaderMap) -> bool {
        headers
            .get(FORWARDED_BY)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|key| self.proves(key))
    }

    /// Whether a relaying broker already charged this publish.
    pub fn already_charged(&self, headers: &http::HeaderMap) -> bool {
        headers.contains_key(CHARGED) && self.forwarded(headers)
    }
}

/// The HTTP client for broker-to-broker calls.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_node_key_proves_a_relay() {
        let key = NodeKey::new("node-secret");
        assert!(key.proves("node-secret"));
        assert!(!key.proves("node-secreT"));
        let mut headers = http::HeaderMap::new();
        headers.insert(CHARGED, http::HeaderValue::from_static("1"));
        assert!(!key.already_charged(&headers));
        headers.insert(FORWARDED_BY, http::HeaderValue::from_static("node-secret"));
        assert!(key.forwarded(&headers) && key.already_charged(&headers));
    }
}

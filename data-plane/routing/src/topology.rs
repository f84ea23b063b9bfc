//! Input types: a tenant's exchanges and bindings exactly as the control plane's
//! topology feed carries them (`{"name", "spec"}` and `{"id", "spec"}`).
//!
//! Unknown fields (such as the feed's `tenant_id`) are ignored, so the feed can grow
//! without breaking brokers that have not been upgraded yet. Defaults match the
//! control plane's: `durable` true, `internal` false, `destination_type` queue,
//! `match` all, `weight` 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Message headers, and a headers binding's headers: name → JSON scalar.
pub type Headers = BTreeMap<String, serde_json::Value>;

/// Name of the default exchange, which routes a message to the queue named by its
/// routing key. It exists in every tenant and cannot be declared or bound.
pub const DEFAULT_EXCHANGE: &str = "default";

/// One exchange of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub name: String,
    pub spec: ExchangeSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeSpec {
    #[serde(rename = "type")]
    pub kind: ExchangeType,
    /// Does not affect routing; carried so the input round-trips.
    #[serde(default = "default_true")]
    pub durable: bool,
    /// Refuses direct publishes; still reachable through exchange-to-exchange bindings
    /// and as an alternate exchange.
    #[serde(default)]
    pub internal: bool,
    /// Receives the message when none of this exchange's bindings matched.
    #[serde(default)]
    pub alternate_exchange: Option<String>,
    /// `consistent-hash` only: hash this header's value instead of the routing key.
    #[serde(default)]
    pub hash_header: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExchangeType {
    Direct,
    Fanout,
    Topic,
    Headers,
    ConsistentHash,
}

/// One binding of a tenant, from an exchange to a queue or to another exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub id: String,
    pub spec: BindingSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingSpec {
    /// The exchange the binding belongs to.
    pub source: String,
    #[serde(default)]
    pub destination_type: DestinationType,
    pub destination: String,
    /// Binding key: compared with the routing key by direct and topic exchanges,
    /// ignored by the others.
    #[serde(default)]
    pub routing_key: String,
    /// Headers exchanges only.
    #[serde(default)]
    pub headers: Headers,
    /// Headers exchanges only; `None` means [`HeaderMatch::All`].
    #[serde(default, rename = "match")]
    pub header_match: Option<HeaderMatch>,
    /// Consistent-hash exchanges only: share of the hash ring; `None` means 1.
    #[serde(default)]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationType {
    #[default]
    Queue,
    Exchange,
}

/// How a headers binding combines its headers (AMQP's `x-match`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderMatch {
    /// Every binding header must be present in the message with an equal value.
    #[default]
    All,
    /// At least one binding header must be present with an equal value.
    Any,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exchange_from_feed_json_with_defaults_and_extra_fields() {
        let x: Exchange = serde_json::from_value(json!({
            "tenant_id": 7,
            "name": "orders",
            "spec": {"type": "consistent-hash", "hash_header": "order-id"}
        }))
        .unwrap();
        assert_eq!(x.name, "orders");
        assert_eq!(x.spec.kind, ExchangeType::ConsistentHash);
        assert!(x.spec.durable);
        assert!(!x.spec.internal);
        assert_eq!(x.spec.alternate_exchange, None);
        assert_eq!(x.spec.hash_header.as_deref(), Some("order-id"));
    }

    #[test]
    fn full_exchange_spec() {
        let x: Exchange = serde_json::from_value(json!({
            "name": "logs",
            "spec": {"type": "topic", "durable": false, "internal": true,
                     "alternate_exchange": "unrouted", "hash_header": null}
        }))
        .unwrap();
        assert_eq!(x.spec.kind, ExchangeType::Topic);
        assert!(!x.spec.durable);
        assert!(x.spec.internal);
        assert_eq!(x.spec.alternate_exchange.as_deref(), Some("unrouted"));
    }

    #[test]
    fn binding_from_feed_json() {
        let b: Binding = serde_json::from_value(json!({
            "id": "b_0123",
            "spec": {"source": "h", "destination_type": "exchange", "destination": "x2",
                     "routing_key": "", "headers": {"k": "v", "n": 1, "b": true},
                     "match": "any", "weight": null}
        }))
        .unwrap();
        assert_eq!(b.spec.destination_type, DestinationType::Exchange);
        assert_eq!(b.spec.header_match, Some(HeaderMatch::Any));
        assert_eq!(b.spec.headers["n"], json!(1));
        assert_eq!(b.spec.weight, None);

        let minimal: Binding = serde_json::from_value(json!({
            "id": "b_1", "spec": {"source": "x", "destination": "q"}
        }))
        .unwrap();
        assert_eq!(minimal.spec.destination_type, DestinationType::Queue);
        assert_eq!(minimal.spec.routing_key, "");
        assert!(minimal.spec.headers.is_empty());
    }

    #[test]
    fn every_exchange_type_name() {
        for (name, kind) in [
            ("direct", ExchangeType::Direct),
            ("fanout", ExchangeType::Fanout),
            ("topic", ExchangeType::Topic),
            ("headers", ExchangeType::Headers),
            ("consistent-hash", ExchangeType::ConsistentHash),
        ] {
            assert_eq!(
                serde_json::from_value::<ExchangeType>(json!(name)).unwrap(),
                kind
            );
        }
        assert!(serde_json::from_value::<ExchangeType>(json!("x-delayed")).is_err());
    }
}

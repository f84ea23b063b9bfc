//! Input types: a tenant's exchanges and bindings. [`ExchangeSpec`] and
//! [`BindingSpec`] are the very types the control plane declares, stores and
//! sends in its topology feed (`{"name", "spec"}` and `{"id", "spec"}`); the
//! rules a declaration must keep are in [`crate::settings`].
//!
//! Unknown fields (such as the feed's `tenant_id`) are ignored, so the feed can grow
//! without breaking brokers that have not been upgraded yet. Defaults:
//! `durable` true, `internal` false, `destination_type` queue, `match` all,
//! `weight` 1.

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

// The control plane validates ([`ExchangeSpec::validate`]), stores and
// returns this type, and the topology feed carries it to the brokers. The doc
// comments are the published API's descriptions (`openapi/control-plane.json`);
// every field is serialised, which is how the control plane tells an unknown
// input field from a known one (it refuses unknown fields, brokers ignore them).
/// Settings of an exchange, as declared with `PUT /v1/exchanges/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExchangeSpec {
    #[serde(rename = "type")]
    pub kind: ExchangeType,
    // Does not affect routing; carried so the declaration round-trips.
    /// Survives broker restarts (default true).
    #[serde(default = "default_true")]
    pub durable: bool,
    // Still reachable through exchange-to-exchange bindings and as an
    // alternate exchange.
    /// Internal exchanges accept no direct publishes, only exchange-to-exchange routing.
    #[serde(default)]
    pub internal: bool,
    /// Exchange that receives messages no binding matched. Must exist.
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ExchangeType {
    /// Routing key equals the binding key.
    Direct,
    /// Every bound queue gets a copy; routing keys are ignored.
    Fanout,
    /// Dot-separated words; binding keys use `*` (one word) and `#` (zero or more).
    Topic,
    /// Matches message headers against the binding's headers (`all` or `any`).
    Headers,
    /// Hashes the routing key (or `hash_header`) onto bindings in proportion to their weight.
    ConsistentHash,
}

/// One binding of a tenant, from an exchange to a queue or to another exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub id: String,
    pub spec: BindingSpec,
}

// Declared, checked ([`BindingSpec::normalize`]) and stored by the control
// plane, carried by the feed; the doc comments are the published API's.
/// A binding as declared with `POST /v1/bindings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BindingSpec {
    /// Source exchange (not the default exchange, which binds every queue by its name).
    pub source: String,
    #[serde(default)]
    pub destination_type: DestinationType,
    pub destination: String,
    // Direct and topic exchanges compare it with the routing key; the others
    // ignore it.
    /// Binding key. For topic exchanges `*` matches one word and `#` zero or more.
    #[serde(default)]
    pub routing_key: String,
    // Spelled out rather than `Headers`: the schema generator would take the
    // alias for a schema of its own.
    /// Headers exchanges only: header values to match (strings, numbers or booleans,
    /// compared with the text of the message's header: `2` matches `"2"`).
    #[serde(default)]
    pub headers: BTreeMap<String, serde_json::Value>,
    // `None` means [`HeaderMatch::All`].
    /// Headers exchanges only: `all` (default) or `any`.
    #[serde(default, rename = "match")]
    pub header_match: Option<HeaderMatch>,
    // `None` means 1.
    /// Consistent-hash exchanges only: share of the hash space, 1 to 1000 (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum DestinationType {
    #[default]
    Queue,
    Exchange,
}

/// How a headers binding combines its headers (`x-match`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum HeaderMatch {
    /// Every header must be present with the given value.
    #[default]
    All,
    /// At least one header must match.
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

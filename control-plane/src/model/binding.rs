//! Bindings: the rules that route an exchange's messages to a queue or to
//! another exchange. A binding is identified by what it matches, so declaring
//! the same binding twice is harmless and its id is the same every time.
//! The spec is the routing crate's own [`BindingSpec`]: what is declared here
//! is what brokers route by.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
pub use sluice_routing::{BindingSpec, DestinationType, HeaderMatch};
use utoipa::ToSchema;

use super::exchange::ExchangeType;
use crate::error::ApiError;
use crate::names;

/// Checks a declared binding against its source exchange's type and fills
/// the type's defaults (so equal bindings serialise equally): the source's
/// and destination's name charsets, then routing's own rules.
pub fn normalize(spec: BindingSpec, source_type: ExchangeType) -> Result<BindingSpec, ApiError> {
    names::resource("source", &spec.source)?;
    names::resource("destination", &spec.destination)?;
    Ok(spec.normalize(source_type)?)
}

/// A binding's stable id, derived from what it matches (everything but `weight`).
pub trait BindingId {
    fn id(&self) -> String;
}

impl BindingId for BindingSpec {
    fn id(&self) -> String {
        let identity = serde_json::json!([
            self.source,
            self.destination_type,
            self.destination,
            self.routing_key,
            self.headers,
            self.header_match,
        ]);
        let digest = Sha256::digest(identity.to_string().as_bytes());
        format!("b_{}", hex::encode(&digest[..10]))
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Binding {
    pub id: String,
    #[serde(flatten)]
    pub spec: BindingSpec,
    pub topology_version: i64,
    pub created_at: DateTime<Utc>,
}

// The rules themselves are tested where they live, in `sluice-routing`.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(key: &str) -> BindingSpec {
        BindingSpec {
            source: "x".into(),
            destination_type: DestinationType::Queue,
            destination: "q".into(),
            routing_key: key.into(),
            headers: BTreeMap::new(),
            header_match: None,
            weight: None,
        }
    }

    #[test]
    fn id_ignores_weight_but_not_key() {
        let a = spec("k").normalize(ExchangeType::ConsistentHash).unwrap();
        let mut b = spec("k");
        b.weight = Some(5);
        let b = b.normalize(ExchangeType::ConsistentHash).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), spec("other").id());
    }
}

//! Bindings: the rules that route an exchange's messages to a queue or to
//! another exchange. A binding is identified by what it matches, so declaring
//! the same binding twice is harmless and its id is the same every time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::exchange::ExchangeType;
use crate::error::ApiError;
use crate::names;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationType {
    #[default]
    Queue,
    Exchange,
}

/// How a headers binding combines its headers (`x-match`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderMatch {
    /// Every header must be present with the given value.
    All,
    /// At least one header must match.
    Any,
}

/// A binding as declared with `POST /v1/bindings`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// Source exchange (not the default exchange, which binds every queue by its name).
    pub source: String,
    #[serde(default)]
    pub destination_type: DestinationType,
    pub destination: String,
    /// Binding key. For topic exchanges `*` matches one word and `#` zero or more.
    #[serde(default)]
    pub routing_key: String,
    /// Headers exchanges only: header values to match (strings, numbers or booleans,
    /// compared with the text of the message's header: `2` matches `"2"`).
    #[serde(default)]
    pub headers: BTreeMap<String, serde_json::Value>,
    /// Headers exchanges only: `all` (default) or `any`.
    #[serde(default, rename = "match")]
    pub header_match: Option<HeaderMatch>,
    /// Consistent-hash exchanges only: share of the hash space, 1 to 1000 (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
}

impl BindingSpec {
    /// Checks the fields against the source exchange's type and fills the
    /// type's defaults, so equal bindings serialise equally.
    pub fn normalize(mut self, source_type: ExchangeType) -> Result<Self, ApiError> {
        names::resource("source", &self.source)?;
        names::resource("destination", &self.destination)?;
        if self.routing_key.len() > 255 {
            return Err(ApiError::validation(
                "routing_key",
                "length",
                "must be at most 255 bytes",
            ));
        }
        if source_type == ExchangeType::Topic {
            validate_topic_key(&self.routing_key)?;
        }
        if source_type == ExchangeType::Headers {
            for (key, value) in &self.headers {
                if key.is_empty() || key.len() > 255 {
                    return Err(ApiError::validation(
                        format!("headers.{key}"),
                        "length",
                        "header names must be 1 to 255 bytes",
                    ));
                }
                if value.is_object() || value.is_array() || value.is_null() {
                    return Err(ApiError::validation(
                        format!("headers.{key}"),
                        "type",
                        "header values must be strings, numbers or booleans",
                    ));
                }
            }
            self.header_match.get_or_insert(HeaderMatch::All);
        } else {
            if !self.headers.is_empty() {
                return Err(ApiError::validation(
                    "headers",
                    "exchange-type",
                    "only valid when the source is a headers exchange",
                ));
            }
            if self.header_match.is_some() {
                return Err(ApiError::validation(
                    "match",
                    "exchange-type",
                    "only valid when the source is a headers exchange",
                ));
            }
        }
        if source_type == ExchangeType::ConsistentHash {
            let weight = *self.weight.get_or_insert(1);
            if !(1..=1000).contains(&weight) {
                return Err(ApiError::validation(
                    "weight",
                    "range",
                    "must be between 1 and 1000",
                ));
            }
        } else if self.weight.is_some() {
            return Err(ApiError::validation(
                "weight",
                "exchange-type",
                "only valid when the source is a consistent-hash exchange",
            ));
        }
        if source_type == ExchangeType::Fanout {
            // Fanout ignores keys; storing one would make equal bindings differ.
            self.routing_key.clear();
        }
        Ok(self)
    }

    /// Stable id derived from what the binding matches (everything but `weight`).
    pub fn id(&self) -> String {
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

/// Topic binding keys: dot-separated words, where a word is `*`, `#`, or
/// text containing neither.
pub fn validate_topic_key(key: &str) -> Result<(), ApiError> {
    for word in key.split('.') {
        let wildcard = word == "*" || word == "#";
        if !wildcard && (word.contains('*') || word.contains('#')) {
            return Err(ApiError::validation(
                "routing_key",
                "topic-pattern",
                format!("`{word}`: `*` and `#` must stand alone as a whole word"),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Binding {
    pub id: String,
    #[serde(flatten)]
    pub spec: BindingSpec,
    pub topology_version: i64,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
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
    fn topic_keys() {
        for ok in ["", "usa.#", "#.news", "*.news", "#", "a.*.b", "a..b"] {
            assert!(validate_topic_key(ok).is_ok(), "{ok}");
        }
        for bad in ["usa#", "a.*b", "**", "a.#x"] {
            assert!(validate_topic_key(bad).is_err(), "{bad}");
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

    #[test]
    fn type_specific_fields_are_rejected_elsewhere() {
        let mut s = spec("k");
        s.weight = Some(2);
        assert!(s.normalize(ExchangeType::Direct).is_err());
        let mut s = spec("k");
        s.headers.insert("a".into(), serde_json::json!("b"));
        assert!(s.normalize(ExchangeType::Topic).is_err());
    }
}

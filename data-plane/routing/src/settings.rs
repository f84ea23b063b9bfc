//! The rules a declared exchange or binding must keep beyond its types,
//! checked by the control plane before it stores one. Name charsets and
//! whether referenced exchanges and queues exist are the control plane's to
//! check; these are the rules routing itself needs.

use crate::topology::{BindingSpec, ExchangeSpec, ExchangeType, HeaderMatch};

/// A setting routing cannot honour: the field, the rule it broke
/// (`exchange-type`, `range`, ...) and why. The control plane answers it as
/// a validation problem naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct InvalidSetting {
    pub field: String,
    pub rule: &'static str,
    pub detail: String,
}

impl InvalidSetting {
    fn new(field: impl Into<String>, rule: &'static str, detail: impl Into<String>) -> Self {
        InvalidSetting {
            field: field.into(),
            rule,
            detail: detail.into(),
        }
    }
}

impl ExchangeSpec {
    /// Checks the spec of the exchange called `name`: it is not its own
    /// alternate exchange, and `hash_header` (1 to 255 bytes) only on a
    /// consistent-hash exchange.
    pub fn validate(&self, name: &str) -> Result<(), InvalidSetting> {
        if self.alternate_exchange.as_deref() == Some(name) {
            return Err(InvalidSetting::new(
                "alternate_exchange",
                "not-self",
                "an exchange cannot be its own alternate exchange",
            ));
        }
        if let Some(header) = &self.hash_header {
            if self.kind != ExchangeType::ConsistentHash {
                return Err(InvalidSetting::new(
                    "hash_header",
                    "exchange-type",
                    "only valid for type consistent-hash",
                ));
            }
            if header.is_empty() || header.len() > 255 {
                return Err(InvalidSetting::new(
                    "hash_header",
                    "length",
                    "must be 1 to 255 bytes",
                ));
            }
        }
        Ok(())
    }
}

impl BindingSpec {
    /// Checks the fields against the source exchange's type and fills the
    /// type's defaults, so equal bindings serialise equally.
    pub fn normalize(mut self, source_type: ExchangeType) -> Result<Self, InvalidSetting> {
        if self.routing_key.len() > 255 {
            return Err(InvalidSetting::new(
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
                    return Err(InvalidSetting::new(
                        format!("headers.{key}"),
                        "length",
                        "header names must be 1 to 255 bytes",
                    ));
                }
                if value.is_object() || value.is_array() || value.is_null() {
                    return Err(InvalidSetting::new(
                        format!("headers.{key}"),
                        "type",
                        "header values must be strings, numbers or booleans",
                    ));
                }
            }
            self.header_match.get_or_insert(HeaderMatch::All);
        } else {
            if !self.headers.is_empty() {
                return Err(InvalidSetting::new(
                    "headers",
                    "exchange-type",
                    "only valid when the source is a headers exchange",
                ));
            }
            if self.header_match.is_some() {
                return Err(InvalidSetting::new(
                    "match",
                    "exchange-type",
                    "only valid when the source is a headers exchange",
                ));
            }
        }
        if source_type == ExchangeType::ConsistentHash {
            let weight = *self.weight.get_or_insert(1);
            if !(1..=1000).contains(&weight) {
                return Err(InvalidSetting::new(
                    "weight",
                    "range",
                    "must be between 1 and 1000",
                ));
            }
        } else if self.weight.is_some() {
            return Err(InvalidSetting::new(
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
}

/// Topic binding keys: dot-separated words, where a word is `*`, `#`, or
/// text containing neither.
pub fn validate_topic_key(key: &str) -> Result<(), InvalidSetting> {
    for word in key.split('.') {
        let wildcard = word == "*" || word == "#";
        if !wildcard && (word.contains('*') || word.contains('#')) {
            return Err(InvalidSetting::new(
                "routing_key",
                "topic-pattern",
                format!("`{word}`: `*` and `#` must stand alone as a whole word"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::topology::DestinationType;

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
    fn type_specific_fields_are_rejected_elsewhere() {
        let mut s = spec("k");
        s.weight = Some(2);
        assert!(s.normalize(ExchangeType::Direct).is_err());
        let mut s = spec("k");
        s.headers.insert("a".into(), serde_json::json!("b"));
        assert!(s.normalize(ExchangeType::Topic).is_err());
    }

    #[test]
    fn defaults_are_filled_per_exchange_type() {
        let hashed = spec("k")
            .normalize(ExchangeType::ConsistentHash)
            .expect("valid");
        assert_eq!(hashed.weight, Some(1));
        let headers = spec("").normalize(ExchangeType::Headers).expect("valid");
        assert_eq!(headers.header_match, Some(HeaderMatch::All));
        let fanout = spec("ignored")
            .normalize(ExchangeType::Fanout)
            .expect("valid");
        assert_eq!(fanout.routing_key, "");
    }

    #[test]
    fn exchange_rules() {
        let spec: ExchangeSpec =
            serde_json::from_value(serde_json::json!({"type": "direct", "hash_header": "h"}))
                .expect("spec");
        let invalid = spec.validate("x").expect_err("hash_header on direct");
        assert_eq!(
            (invalid.field.as_str(), invalid.rule),
            ("hash_header", "exchange-type")
        );
        let own: ExchangeSpec = serde_json::from_value(
            serde_json::json!({"type": "fanout", "alternate_exchange": "x"}),
        )
        .expect("spec");
        assert_eq!(own.validate("x").map_err(|e| e.rule), Err("not-self"));
        assert_eq!(own.validate("y"), Ok(()));
    }
}

//! The one rule both planes read a JSON request body by, so that a body one
//! plane takes the other does not refuse, and the reverse:
//!
//! - a body with content is JSON only when it says so: `Content-Type:
//!   application/json` (parameters allowed) or a `+json` type, else 415 —
//!   a form or text body is not read as JSON by guessing;
//! - an empty body (or only whitespace) is no body, read as `{}`, and needs
//!   no `Content-Type` (`curl -X POST .../receive`);
//! - an object holding the same key twice is refused, naming it: which of
//!   two values a reader keeps differs between parsers (serde's structs
//!   refuse, its maps keep the last, others keep the first), so a body
//!   whose meaning depends on the parser is not taken;
//! - text that is not JSON is malformed.
//!
//! Each plane maps [`BodyRefusal`] to its own error table in one place and
//! then reads the checked bytes into its types.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a request body is not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    /// A body with content that does not say it is JSON (415).
    #[error("expected Content-Type: application/json, got {0}")]
    NotJson(String),
    /// Not JSON text (400).
    #[error("request body is not valid JSON: {0}")]
    Malformed(String),
    /// An object holds `key` twice (422, rule `duplicate-key`); `field` is
    /// the JSON path of the second one.
    #[error("{field}: the key `{key}` appears more than once in its object")]
    DuplicateKey { field: String, key: String },
}

/// Whether a `Content-Type` value names JSON.
pub fn is_json_media_type(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case("+json")
}

/// Checks a request body against the rule; answers the bytes to parse
/// (`{}` for an empty body).
pub fn check<'a>(content_type: Option<&[u8]>, body: &'a [u8]) -> Result<&'a [u8], BodyRefusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(b"{}");
    }
    if !is_json_media_type(content_type) {
        let given = content_type
            .map(|v| format!("`{}`", String::from_utf8_lossy(v)))
            .unwrap_or_else(|| "none".to_string());
        return Err(BodyRefusal::NotJson(given));
    }
    let duplicate = RefCell::new(None);
    let mut reader = serde_json::Deserializer::from_slice(body);
    let walked = Walk {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut reader)
    .and_then(|()| reader.end());
    if let Some(refusal) = duplicate.into_inner() {
        return Err(refusal);
    }
    walked.map_err(|err| BodyRefusal::Malformed(err.to_string()))?;
    Ok(body)
}

/// Walks one JSON value without keeping it, remembering the first key seen
/// twice in an object. serde_json's recursion limit bounds the depth.
struct Walk<'a> {
    path: String,
    duplicate: &'a RefCell<Option<BodyRefusal>>,
}

impl Walk<'_> {
    fn child(&self, path: String) -> Self {
        Walk {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while items
            .next_element_seed(self.child(format!("{}[{index}]", self.path)))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = members.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if seen.contains(&key) {
                *self.duplicate.borrow_mut() = Some(BodyRefusal::DuplicateKey { field: path, key });
                return Err(de::Error::custom("duplicate key"));
            }
            members.next_value_seed(self.child(path))?;
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&[u8]> = Some(b"application/json");

    #[test]
    fn a_body_must_say_it_is_json() {
        for given in [
            None,
            Some(&b"text/plain"[..]),
            Some(b"application/x-www-form-urlencoded"),
            Some(b"application/jsonx"),
        ] {
            assert!(
                matches!(check(given, b"{}"), Err(BodyRefusal::NotJson(_))),
                "{given:?}"
            );
        }
        for given in [
            &b"application/json"[..],
            b"Application/JSON; charset=utf-8",
            b"application/merge-patch+json",
        ] {
            assert_eq!(check(Some(given), b"{\"a\":1}"), Ok(&b"{\"a\":1}"[..]));
        }
    }

    #[test]
    fn an_empty_body_is_an_empty_object_whatever_its_type() {
        assert_eq!(check(None, b""), Ok(&b"{}"[..]));
        assert_eq!(check(Some(b"text/plain"), b" \n"), Ok(&b"{}"[..]));
    }

    #[test]
    fn a_key_given_twice_is_named_at_any_depth() {
        let refused = |body: &str| match check(JSON, body.as_bytes()) {
            Err(BodyRefusal::DuplicateKey { field, .. }) => field,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(refused(r#"{"name":"a","name":"b"}"#), "name");
        assert_eq!(
            refused(r#"{"messages":[{"body":"x"},{"headers":{"h":1,"h":2}}]}"#),
            "messages[1].headers.h"
        );
        // The same key in two objects is no duplicate.
        assert!(check(JSON, br#"{"a":{"k":1},"b":{"k":1},"k":[{"k":1}]}"#).is_ok());
    }

    #[test]
    fn text_that_is_not_json_is_malformed() {
        for body in [
            &b"{"[..],
            b"{\"a\": }",
            b"not json",
            b"{} {}",
            b"{\"a\":1}x",
        ] {
            assert!(
                matches!(check(JSON, body), Err(BodyRefusal::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

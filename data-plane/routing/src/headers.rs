//! The headers exchange's matcher: a binding matches a message by its headers,
//! never by its routing key.
//!
//! - `match: all` (the default): every binding header is present in the message
//!   with an equal value. A binding with no headers therefore matches every message.
//! - `match: any`: at least one binding header is present with an equal value. A
//!   binding with no headers matches nothing (as in RabbitMQ).
//!
//! Values are compared by their text. Message headers arrive over HTTP as
//! strings, while a binding may be declared with a number or a boolean (as an
//! AMQP user would bind `{"version": 2}`): a binding's `2` matches a message
//! header `"2"` and `true` matches `"true"`. A number's text is its JSON form,
//! so `1.0` does not match `"1"`. Every header name counts, including names
//! starting with `x-` (RabbitMQ skips those; Sluice has no `x-` arguments to skip).
//!
//! Cost is linear in the exchange's headers bindings, as in RabbitMQ: there is no
//! index that serves `any` and `all` over arbitrary header sets.

use crate::topology::{HeaderMatch, Headers};

/// Does a binding with `binding_headers` and `how` match a message with `message`?
pub fn headers_match(binding_headers: &Headers, how: HeaderMatch, message: &Headers) -> bool {
    let equal = |(name, value): (&String, &serde_json::Value)| {
        message
            .get(name)
            .is_some_and(|sent| text(sent) == text(value))
    };
    match how {
        HeaderMatch::All => binding_headers.iter().all(equal),
        HeaderMatch::Any => binding_headers.iter().any(equal),
    }
}

/// A header value as the text a publisher would have sent for it.
fn text(value: &serde_json::Value) -> std::borrow::Cow<'_, str> {
    match value {
        serde_json::Value::String(text) => std::borrow::Cow::Borrowed(text),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn headers(value: Value) -> Headers {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn all_needs_every_header() {
        let binding = headers(json!({"format": "pdf", "type": "report"}));
        let both = headers(json!({"format": "pdf", "type": "report", "extra": 1}));
        let one = headers(json!({"format": "pdf"}));
        let wrong = headers(json!({"format": "pdf", "type": "log"}));
        assert!(headers_match(&binding, HeaderMatch::All, &both));
        assert!(!headers_match(&binding, HeaderMatch::All, &one));
        assert!(!headers_match(&binding, HeaderMatch::All, &wrong));
    }

    #[test]
    fn any_needs_one_header() {
        let binding = headers(json!({"format": "pdf", "type": "report"}));
        let one = headers(json!({"format": "pdf"}));
        let wrong = headers(json!({"format": "zip", "type": "log"}));
        assert!(headers_match(&binding, HeaderMatch::Any, &one));
        assert!(!headers_match(&binding, HeaderMatch::Any, &wrong));
        assert!(!headers_match(&binding, HeaderMatch::Any, &Headers::new()));
    }

    #[test]
    fn empty_binding_all_matches_everything_any_matches_nothing() {
        let message = headers(json!({"a": 1}));
        assert!(headers_match(&Headers::new(), HeaderMatch::All, &message));
        assert!(headers_match(
            &Headers::new(),
            HeaderMatch::All,
            &Headers::new()
        ));
        assert!(!headers_match(&Headers::new(), HeaderMatch::Any, &message));
    }

    #[test]
    fn values_compare_by_their_text() {
        let string_one = headers(json!({"n": "1"}));
        let number_one = headers(json!({"n": 1}));
        let float_one = headers(json!({"n": 1.0}));
        let flag = headers(json!({"n": true}));
        let flag_text = headers(json!({"n": "true"}));
        let other_text = headers(json!({"n": "2"}));
        assert!(headers_match(&number_one, HeaderMatch::All, &string_one));
        assert!(headers_match(&string_one, HeaderMatch::Any, &number_one));
        assert!(headers_match(&flag, HeaderMatch::All, &flag_text));
        assert!(!headers_match(&float_one, HeaderMatch::All, &string_one));
        assert!(!headers_match(&number_one, HeaderMatch::All, &other_text));
        assert!(!headers_match(&flag, HeaderMatch::Any, &string_one));
    }
}

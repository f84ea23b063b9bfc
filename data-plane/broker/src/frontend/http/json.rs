//! `JsonBody<T>`: axum's JSON extractor, but read by the rule both planes
//! share (`sluice_protocol::json_body`: `Content-Type` must say JSON, an
//! empty body is `{}`, no key twice, else 415 / 400 / 422 problems), and a
//! body that does not fit `T` becomes a 422 problem naming the offending
//! field (`messages[0].body`) instead of a plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use sluice_protocol::json_body;

use crate::error::BrokerError;

/// Largest request body accepted (a batch of messages under the biggest quota).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BrokerError;

    async fn from_request(request: Request, state: &S) -> Result<Self, BrokerError> {
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|e| BrokerError::TooLarge {
                    field: "body".into(),
                    detail: e.body_text(),
                })?;
        let bytes = json_body::check(content_type.as_ref().map(|v| v.as_bytes()), &bytes)?;
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Ok(JsonBody(value)),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                let field = field_name(&path, &inner.to_string());
                let rule = if inner.is_syntax() || inner.is_eof() {
                    "json"
                } else {
                    "schema"
                };
                Err(BrokerError::validation(field, rule, inner.to_string()))
            }
        }
    }
}

/// The field an error is about: the path, plus the name of a missing or
/// unknown field.
pub(super) fn field_name(path: &str, message: &str) -> String {
    let missing = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_string(),
        (".", None) => "body".to_string(),
        // An unknown field's path already ends with its name.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_string()
        }
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::field_name;

    #[test]
    fn names_the_field() {
        assert_eq!(
            field_name("messages[0].body_encoding", "unknown variant"),
            "messages[0].body_encoding"
        );
        assert_eq!(
            field_name(".", "missing field `messages` at line 1"),
            "messages"
        );
        assert_eq!(
            field_name("messages[1]", "missing field `body`"),
            "messages[1].body"
        );
        assert_eq!(field_name(".", "expected value"), "body");
    }
}

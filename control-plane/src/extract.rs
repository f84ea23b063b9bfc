//! Request extractors that turn every client mistake into a problem document
//! naming the offending field, instead of axum's plain-text rejections.
//!
//! They are also where path and query values are checked for a NUL byte,
//! once for every route: Postgres refuses U+0000 in text, so such a value
//! would otherwise reach SQL and come back as a 500. No documented name,
//! id or cursor can contain it. JSON bodies are checked the same way, every
//! string and key of them ([`parse_json`]).

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use sluice_protocol::json_body;

use crate::error::ApiError;

/// JSON body, read by the rule both planes share
/// (`sluice_protocol::json_body`: `Content-Type`, an empty body as `{}`,
/// no key twice). Unknown fields are rejected by the target types
/// (`deny_unknown_fields`); the error names the JSON path of the culprit.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(e.body_text())
            } else {
                ApiError::MalformedJson(e.body_text())
            }
        })?;
        let checked = json_body::check(content_type.as_ref().map(|v| v.as_bytes()), &bytes)?;
        parse_json(checked).map(ApiJson)
    }
}

/// JSON body of a type shared with brokers (a queue's, stream's, exchange's
/// or binding's settings). Those types ignore unknown fields, so that a
/// newer control plane can add a setting before every broker knows it; the
/// control plane still refuses what it does not know itself, as
/// `deny_unknown_fields` would, naming the field's JSON path.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Serialize> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ApiJson(value) = ApiJson::<Value>::from_request(req, state).await?;
        let typed: T = from_value(value.clone())?;
        // Every field of these types serialises, so a key of the request that
        // the typed value does not write back is one the type does not know.
        let known = serde_json::to_value(&typed)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("re-serialising a body: {e}")))?;
        match unknown_field(&value, &known, "") {
            Some(unknown) => Err(unknown),
            None => Ok(StrictJson(typed)),
        }
    }
}

/// The first key of `given` that `known` (the same body, read and written
/// back) lacks, as serde's `deny_unknown_fields` would report it.
fn unknown_field(given: &Value, known: &Value, path: &str) -> Option<ApiError> {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    match (given, known) {
        (Value::Object(given), Value::Object(known)) => {
            given
                .iter()
                .find_map(|(name, value)| match known.get(name) {
                    Some(known_value) => unknown_field(value, known_value, &join(name)),
                    None => {
                        let expected: Vec<String> =
                            known.keys().map(|k| format!("`{k}`")).collect();
                        Some(ApiError::validation(
                            join(name),
                            "unknown-field",
                            format!(
                                "unknown field `{name}`, expected one of {}",
                                expected.join(", ")
                            ),
                        ))
                    }
                })
        }
        (Value::Array(given), Value::Array(known)) => given
            .iter()
            .zip(known)
            .enumerate()
            .find_map(|(i, (g, k))| unknown_field(g, k, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Parses a JSON object, naming the field that broke a rule. The text is
/// parsed to a value first, so that only real syntax errors are "malformed"
/// (serde_json reports some type mismatches as syntax errors), and only
/// objects are accepted (serde would take an array as a struct's fields in order).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::validation(
            "body",
            "type",
            "the body must be a JSON object",
        ));
    }
    if let Some(field) = nul_in(&value, "") {
        return Err(ApiError::validation(field, "charset", NUL_DETAIL));
    }
    from_value(value)
}

/// The JSON path of the first string (value or key) in `value` holding a
/// NUL byte. Bodies are stored as text and JSONB, and Postgres refuses
/// U+0000 in both (`\u0000` too), so such a body would come back as a 500;
/// no setting, name or routing key is documented to hold one.
fn nul_in(value: &Value, path: &str) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.to_string()
        }
    };
    match value {
        Value::String(text) if text.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item, &format!("{path}[{i}]"))),
        Value::Object(members) => members.iter().find_map(|(name, member)| {
            if name.contains('\0') {
                // The key itself cannot be named as it is: name its object.
                Some(here())
            } else if path.is_empty() {
                nul_in(member, name)
            } else {
                nul_in(member, &format!("{path}.{name}"))
            }
        }),
        _ => None,
    }
}

/// Reads a parsed body as `T`, naming the field that broke a rule.
fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = err.path().to_string();
        classify(&path, &err.into_inner().to_string())
    })
}

/// Query string, with the same field-naming errors as bodies.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let nul = form_urlencoded::parse(query.as_bytes())
            .find(|(key, value)| key.contains('\0') || value.contains('\0'));
        if let Some((key, _)) = nul {
            // A key with NUL cannot be a known parameter: name the query itself.
            let field = if key.contains('\0') {
                "query".to_string()
            } else {
                key.into_owned()
            };
            return Err(ApiError::validation(field, "charset", NUL_DETAIL));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(value) => Ok(ApiQuery(value)),
            Err(err) => {
                let path = err.path().to_string();
                Err(classify(&path, &err.into_inner().to_string()))
            }
        }
    }
}

const NUL_DETAIL: &str = "must not contain a NUL byte (U+0000)";

/// Path parameters (`axum::extract::Path`), refusing a NUL byte in any of
/// them before the handler runs. The value names something that cannot
/// exist, so the answer is what a lookup of an absent resource gets — 404
/// `not-found` — except for the name a `PUT` creates (the last segment),
/// which is refused like any other bad name: 422 naming the parameter.
/// Other rejections (a segment that is not UTF-8) are axum's own, made
/// problems by `error::framework_errors_as_problems`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        // Not UTF-8: left to `Path` below, which rejects it.
        if let Ok(params) = RawPathParams::from_request_parts(parts, state).await {
            let nul = params.iter().find(|(_, value)| value.contains('\0'));
            if let Some((param, value)) = nul {
                let template = parts
                    .extensions
                    .get::<MatchedPath>()
                    .map(|m| m.as_str())
                    .unwrap_or_default();
                return Err(unnameable(&parts.method, template, param, value).into_response());
            }
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(IntoResponse::into_response)
    }
}

/// The problem for path parameter `param` (of route `template`) holding a
/// value no resource can have.
fn unnameable(method: &Method, template: &str, param: &str, value: &str) -> ApiError {
    let placeholder = format!("{{{param}}}");
    let created = *method == Method::PUT && template.ends_with(&format!("/{placeholder}"));
    if created {
        return ApiError::validation(param, "charset", NUL_DETAIL);
    }
    // The collection segment before the parameter says what was looked up.
    let collection = template
        .split('/')
        .take_while(|segment| *segment != placeholder)
        .last()
        .unwrap_or_default();
    let kind = match collection {
        "tenants" => "tenant",
        "api-keys" => "api key",
        "exchanges" => "exchange",
        "queues" => "queue",
        "streams" => "stream",
        "bindings" => "binding",
        "nodes" => "node",
        _ => "resource",
    };
    ApiError::not_found(kind, value.escape_debug().to_string())
}

/// Maps serde's message to a field and a rule. serde reports an unknown or
/// missing field at the parent's path, so the name is taken from the message.
fn classify(path: &str, message: &str) -> ApiError {
    // serde_path_to_error writes a map key that did not parse (a tenant id
    // that is not a number) as a `?` segment: the map is the field to name.
    let path = path.trim_end_matches(".?");
    let quoted = message.split('`').nth(1).unwrap_or("").to_string();
    let join = |name: &str| {
        if path == name || path.ends_with(&format!(".{name}")) {
            path.to_string()
        } else if path.is_empty() || path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    if message.starts_with("unknown field") {
        return ApiError::validation(join(&quoted), "unknown-field", message.to_string());
    }
    if message.starts_with("missing field") {
        return ApiError::validation(join(&quoted), "required", message.to_string());
    }
    let field = if path.is_empty() || path == "." {
        "body".to_string()
    } else {
        path.to_string()
    };
    let rule = if message.starts_with("unknown variant") {
        "enum"
    } else {
        "type"
    };
    ApiError::validation(field, rule, message.to_string())
}

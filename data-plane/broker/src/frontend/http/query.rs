//! `QueryParams<T>`: axum's query extractor, but a query string that does
//! not fit `T` becomes a 422 problem naming the parameter (`wait_ms`,
//! `format`) and the rule, instead of a plain-text rejection.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::json::field_name;
use crate::error::BrokerError;

pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BrokerError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, BrokerError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(QueryParams)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                let field = match field_name(&path, &message).as_str() {
                    "body" => "query".to_string(),
                    field => field.to_string(),
                };
                BrokerError::validation(field, "query", message)
            })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only through Debug
    struct Params {
        wait_ms: Option<u64>,
        #[serde(default)]
        format: Option<Format>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Format {
        Json,
    }

    async fn extract(uri: &str) -> Result<QueryParams<Params>, BrokerError> {
        let (mut parts, ()) = Request::get(uri).body(()).expect("request").into_parts();
        QueryParams::<Params>::from_request_parts(&mut parts, &()).await
    }

    fn field(result: Result<QueryParams<Params>, BrokerError>) -> String {
        match result {
            Err(BrokerError::Validation { field, .. }) => field,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[tokio::test]
    async fn names_the_parameter_that_does_not_fit() {
        assert!(extract("/x?wait_ms=10&format=json").await.is_ok());
        assert!(extract("/x").await.is_ok());
        assert_eq!(field(extract("/x?wait_ms=soon").await), "wait_ms");
        assert_eq!(field(extract("/x?format=xml").await), "format");
        assert_eq!(field(extract("/x?colour=red").await), "colour");
    }
}

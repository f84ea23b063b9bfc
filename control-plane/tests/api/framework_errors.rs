//! Errors axum answers itself, before any handler runs — a method a route
//! does not have, a path parameter that is not UTF-8 — are problem
//! documents like every other error, keeping their status and `Allow`.

use reqwest::{Method, StatusCode, header};
use serde_json::Value;

use crate::support::TestServer;

/// Status, headers and the body parsed as JSON of `method path` with `key`.
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
) -> (StatusCode, header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .request(method, server.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("send");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

#[tokio::test]
async fn a_wrong_method_is_a_method_not_allowed_problem_with_allow() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, headers, problem) = send(&server, Method::PATCH, "/v1/queues/x", &admin).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{problem}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    let allow = headers[header::ALLOW].to_str().expect("allow");
    for method in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(method), "Allow: {allow}");
    }
    assert_eq!(
        problem["type"],
        "https://sluice.dev/problems/method-not-allowed"
    );
    assert_eq!(problem["status"], 405);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("PATCH")),
        "{problem}"
    );
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_validation_problem_naming_it() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, headers, problem) = send(&server, Method::GET, "/v1/queues/%FF", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(problem["type"], "https://sluice.dev/problems/validation");
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["field"], "name", "{problem}");
    assert_eq!(problem["rule"], "utf-8");
}

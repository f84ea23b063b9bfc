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

#[tokio::test]
async fn a_data_plane_route_on_the_control_plane_says_where_it_lives() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, headers, problem) =
        send(&server, Method::POST, "/v1/queues/orders/messages", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(problem["type"], "https://sluice.dev/problems/not-found");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("served by the brokers"), "{problem}");
    assert!(detail.contains("broker_url"), "{problem}");
    // A route neither plane has says so, and where the routes are listed.
    let (status, _, problem) = send(&server, Method::GET, "/v1/nothing", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("openapi/control-plane.json"), "{problem}");
}

#[tokio::test]
async fn request_heads_over_the_limits_are_problems_naming_the_rule() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let mut many = reqwest::Client::new()
        .get(server.url("/v1/queues"))
        .bearer_auth(&admin);
    for i in 0..150 {
        many = many.header(format!("x-extra-{i}"), "1");
    }
    let response = many.send().await.expect("send");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(
        problem["type"],
        "https://sluice.dev/problems/headers-too-large"
    );
    assert_eq!(
        (problem["field"].as_str(), problem["rule"].as_str()),
        (Some("headers"), Some("count"))
    );

    let big = "v".repeat(40 * 1024);
    let response = reqwest::Client::new()
        .get(server.url("/v1/queues"))
        .bearer_auth(&admin)
        .header("x-big", big)
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["rule"], "size", "{problem}");

    let long = format!("/v1/queues?after={}", "a".repeat(10_000));
    let (status, headers, problem) = send(&server, Method::GET, &long, &admin).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG, "{problem}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(problem["type"], "https://sluice.dev/problems/uri-too-long");
    assert_eq!(problem["rule"], "length", "{problem}");
}

#[tokio::test]
async fn a_query_string_that_does_not_parse_is_a_problem_naming_the_parameter() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, headers, problem) =
        send(&server, Method::GET, "/v1/queues?limit=many", &admin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(problem["field"], "limit", "{problem}");
}

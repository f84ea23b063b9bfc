//! Probes, metrics and the served OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestServer;

#[tokio::test]
async fn healthz_and_readyz_answer_without_credentials() {
    let server = TestServer::start().await;
    assert_eq!(
        server.request(Method::GET, "/healthz", None, None).await,
        (StatusCode::OK, json!("ok"))
    );
    assert_eq!(
        server.request(Method::GET, "/readyz", None, None).await,
        (StatusCode::OK, json!("ready"))
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, _) = server.put("/v1/queues/metered", &admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = server.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().expect("metrics are text");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains(r#"route="/v1/queues/{name}""#)
                && l.contains(r#"method="PUT""#)
                && l.contains(r#"status="201""#)
        })
        .unwrap_or_else(|| panic!("no PUT /v1/queues/{{name}} counter in:\n{text}"));
    // The raw path never becomes a label.
    assert!(!text.contains("/v1/queues/metered"), "{line}");
}

#[tokio::test]
async fn unknown_routes_are_problem_documents() {
    let server = TestServer::start().await;
    let got = server.request(Method::GET, "/v1/nope", None, None).await;
    crate::support::assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn served_openapi_document_is_the_generated_one() {
    let server = TestServer::start().await;
    let (status, served) = server
        .request(Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let generated: Value = serde_json::from_str(&sluice_control::api::openapi_json()).unwrap();
    assert_eq!(served, generated);
    // Not vacuous: the document describes the API.
    assert!(served["paths"]["/v1/queues/{name}"]["put"].is_object());
}

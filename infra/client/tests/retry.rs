//! Retries, `Retry-After`, credentials and headers against a scripted
//! server on 127.0.0.1: it answers the queued answers in order (then 200
//! with the default body) and records every request it got.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sluice_client::data::{OutgoingMessage, QueuePublishRequest};
use sluice_client::header::HeaderName;
use sluice_client::{Client, ClientError, Credential, RetryPolicy, slug};

struct Scripted {
    status: StatusCode,
    retry_after: Option<&'static str>,
    body: String,
}

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Scripted>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Script>>;

const WHOAMI: &str =
    r#"{"tenant":"acme","key_id":"abc","scopes":["publish"],"node_id":"n1","topology_version":3}"#;
const PUBLISHED: &str = r#"{"results":[{"status":"stored","queues":1}]}"#;

fn problem(status: StatusCode, slug: &str) -> String {
    format!(
        r#"{{"type":"https://sluice.dev/problems/{slug}","title":"t","status":{},"detail":"d"}}"#,
        status.as_u16()
    )
}

async fn answer(
    axum::extract::State(script): axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut script = script.lock().expect("script lock");
    let path = uri.path().to_string();
    script.seen.push(Seen {
        method,
        path: path.clone(),
        headers,
        body,
    });
    match script.answers.pop_front() {
        Some(scripted) => {
            let mut response = (scripted.status, scripted.body).into_response();
            let content_type = HeaderValue::from_static("application/problem+json");
            response.headers_mut().insert("content-type", content_type);
            if let Some(after) = scripted.retry_after {
                let value = HeaderValue::from_static(after);
                response.headers_mut().insert("retry-after", value);
            }
            response
        }
        None if path.ends_with("/messages") => PUBLISHED.into_response(),
        None => WHOAMI.into_response(),
    }
}

/// A scripted server; its client (default policy) and the script.
async fn server(answers: Vec<Scripted>) -> (Client, Shared) {
    let script: Shared = Arc::new(Mutex::new(Script {
        answers: answers.into(),
        seen: Vec::new(),
    }));
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (Client::new(&url), script)
}

fn refusal(status: StatusCode, retry_after: Option<&'static str>) -> Scripted {
    let slug = if status == StatusCode::TOO_MANY_REQUESTS {
        slug::RATE_LIMITED
    } else {
        slug::UNAVAILABLE
    };
    Scripted {
        status,
        retry_after,
        body: problem(status, slug),
    }
}

fn seen(script: &Shared) -> Vec<Seen> {
    script.lock().expect("script lock").seen.clone()
}

fn publish_request() -> QueuePublishRequest<'static> {
    QueuePublishRequest {
        messages: vec![OutgoingMessage::text("hello").message_id("m1")],
    }
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_with_the_same_body() {
    let (client, script) = server(vec![
        refusal(StatusCode::TOO_MANY_REQUESTS, Some("0")),
        refusal(StatusCode::TOO_MANY_REQUESTS, Some("1")),
    ])
    .await;
    let started = Instant::now();
    let answer = client
        .publish_to_queue("jobs", &publish_request())
        .await
        .expect("stored after two refusals");
    assert!(answer.results[0].stored());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let seen = seen(&script);
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.body == seen[0].body && s.method == Method::POST)
    );
    assert_eq!(seen[0].path, "/v1/queues/jobs/messages");
}

#[tokio::test]
async fn without_retries_a_429_is_the_problem_with_its_retry_after() {
    let (client, script) = server(vec![refusal(StatusCode::TOO_MANY_REQUESTS, Some("3"))]).await;
    let error = client
        .with_retry(RetryPolicy::NONE)
        .publish_to_queue("jobs", &publish_request())
        .await
        .expect_err("refused");
    assert!(error.is(slug::RATE_LIMITED), "{error}");
    assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(seen(&script).len(), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_gives_up_at_once() {
    let (client, script) = server(vec![refusal(StatusCode::TOO_MANY_REQUESTS, Some("120"))]).await;
    let started = Instant::now();
    let error = client.whoami().await.expect_err("refused");
    assert!(error.is(slug::RATE_LIMITED));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(seen(&script).len(), 1);
}

#[tokio::test]
async fn attempts_are_bounded() {
    let always: Vec<Scripted> = (0..10)
        .map(|_| refusal(StatusCode::TOO_MANY_REQUESTS, Some("0")))
        .collect();
    let (client, script) = server(always).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    let error = client
        .with_retry(policy)
        .whoami()
        .await
        .expect_err("refused");
    assert!(error.is(slug::RATE_LIMITED));
    assert_eq!(seen(&script).len(), 3);
}

#[tokio::test]
async fn a_503_is_retried_for_reads_but_not_for_publishes() {
    let (client, script) = server(vec![
        refusal(StatusCode::SERVICE_UNAVAILABLE, None),
        refusal(StatusCode::SERVICE_UNAVAILABLE, Some("0")),
    ])
    .await;
    let publish = client.publish_to_queue("jobs", &publish_request()).await;
    let error = publish.expect_err("a publish may have been stored: not repeated");
    assert!(error.is(slug::UNAVAILABLE));
    assert_eq!(seen(&script).len(), 1);
    // A read is repeated (after its Retry-After: 0).
    let whoami = client.whoami().await.expect("read retried");
    assert_eq!(whoami.topology_version, 3);
    assert_eq!(seen(&script).len(), 3);
    // And a caller may opt a publish in.
    let (client, script) = server(vec![refusal(StatusCode::SERVICE_UNAVAILABLE, Some("0"))]).await;
    client
        .publish_to_queue("jobs", &publish_request())
        .retry_unavailable(true)
        .await
        .expect("retried when asked");
    assert_eq!(seen(&script).len(), 2);
}

#[tokio::test]
async fn a_non_problem_answer_keeps_status_and_text() {
    let (client, _) = server(vec![Scripted {
        status: StatusCode::BAD_GATEWAY,
        retry_after: None,
        body: "upstream gone".into(),
    }])
    .await;
    match client.whoami().await {
        Err(ClientError::Status { status, body, .. }) => {
            assert_eq!(status, StatusCode::BAD_GATEWAY);
            assert_eq!(body, "upstream gone");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
}

#[tokio::test]
async fn credentials_and_headers_per_client_and_per_request() {
    let (client, script) = server(Vec::new()).await;
    let forwarded_by = HeaderName::from_static("x-sluice-forwarded-by");
    let charged = HeaderName::from_static("x-sluice-charged");
    // A forwarder: the caller's Authorization as given, its own headers.
    let forwarder = client
        .with_credential(Credential::Authorization(HeaderValue::from_static(
            "Bearer sk_abc_caller",
        )))
        .with_header(forwarded_by.clone(), HeaderValue::from_static("node-key"));
    forwarder
        .publish_to_queue("jobs", &publish_request())
        .header(charged.clone(), HeaderValue::from_static("1"))
        .await
        .expect("published");
    // Per request: another credential and a header replacing the client's.
    forwarder
        .whoami()
        .bearer("sk_other")
        .header(forwarded_by.clone(), HeaderValue::from_static("other-node"))
        .await
        .expect("whoami");
    client
        .with_bearer("sk_plain")
        .whoami()
        .await
        .expect("whoami");
    let seen = seen(&script);
    let header = |i: usize, name: &str| {
        seen[i]
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        header(0, "authorization").as_deref(),
        Some("Bearer sk_abc_caller")
    );
    assert_eq!(
        header(0, "x-sluice-forwarded-by").as_deref(),
        Some("node-key")
    );
    assert_eq!(header(0, "x-sluice-charged").as_deref(), Some("1"));
    assert_eq!(
        header(0, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        header(1, "authorization").as_deref(),
        Some("Bearer sk_other")
    );
    assert_eq!(
        header(1, "x-sluice-forwarded-by").as_deref(),
        Some("other-node")
    );
    assert_eq!(header(1, "x-sluice-charged"), None);
    assert_eq!(
        header(2, "authorization").as_deref(),
        Some("Bearer sk_plain")
    );
    assert_eq!(header(2, "x-sluice-forwarded-by"), None);
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).expect("json");
    assert_eq!(
        body,
        serde_json::json!({"messages": [{"body": "hello", "message_id": "m1"}]})
    );
}

#[tokio::test]
async fn a_client_per_base_url_shares_its_settings() {
    let (first, first_script) = server(Vec::new()).await;
    let (second, second_script) = server(Vec::new()).await;
    let app = first.with_bearer("sk_app");
    app.at(second.base_url()).whoami().await.expect("second");
    app.whoami()
        .base_url(second.base_url())
        .await
        .expect("second again");
    app.whoami().await.expect("first");
    assert_eq!(seen(&first_script).len(), 1);
    let second_seen = seen(&second_script);
    assert_eq!(second_seen.len(), 2);
    assert!(
        second_seen
            .iter()
            .all(|s| s.headers["authorization"] == "Bearer sk_app")
    );
}

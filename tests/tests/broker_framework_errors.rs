//! Errors a real broker's HTTP framework answers itself, before any handler
//! runs — a method a route does not have, a path parameter that is not
//! UTF-8 — are problem documents like every other error, keeping their
//! status and `Allow`.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sluice_e2e::{Api, Broker, ControlPlane, Postgres, eventually, random_operator_key};

const NODE_KEY: &str = "e2e-node-key";

/// Status, headers and the body parsed as JSON of `method url` with `key`.
async fn send(method: Method, url: &str, key: &str) -> (StatusCode, header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .request(method, url)
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

#[tokio::test(flavor = "multi_thread")]
async fn framework_errors_on_a_broker_are_problems() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let dir = tempfile::tempdir()?;
    let operator = random_operator_key();
    let env = [("SLUICE_CONTROL_NODE_KEY", NODE_KEY)];
    let control =
        ControlPlane::start_with(&pg.url(), &operator, &dir.path().join("control.log"), &env)?;
    let broker = Broker::start(
        &control.url,
        NODE_KEY,
        "n1",
        &dir.path().join("broker"),
        &dir.path().join("broker.log"),
    )?;
    let (_, tenant) = Api::new(&control.url)
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&operator),
            Some(json!({"name": "acme"})),
        )
        .await?;
    let admin = tenant["admin_key"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let whoami = format!("{}/v1/whoami", broker.url);
    // Authenticated first, so what follows is about the method and the path.
    let (url, key) = (whoami.as_str(), admin.as_str());
    let known = eventually(Duration::from_secs(10), || async move {
        send(Method::GET, url, key).await.0 == StatusCode::OK
    })
    .await;
    assert!(known, "the broker never learned the tenant's key");

    let (status, headers, problem) = send(Method::DELETE, &whoami, &admin).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{problem}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert!(
        headers[header::ALLOW].to_str()?.contains("GET"),
        "{headers:?}"
    );
    assert_eq!(
        problem["type"],
        "https://sluice.dev/problems/method-not-allowed"
    );
    assert_eq!(problem["status"], 405);

    let stats = format!("{}/v1/queues/%FF/stats", broker.url);
    let (status, headers, problem) = send(Method::GET, &stats, &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(problem["type"], "https://sluice.dev/problems/validation");
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["field"], "queue", "{problem}");
    assert_eq!(problem["rule"], "utf-8");

    // A control-plane route on a broker says where it lives.
    let declare = format!("{}/v1/queues/orders", broker.url);
    let (status, headers, problem) = send(Method::PUT, &declare, &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(problem["type"], "https://sluice.dev/problems/not-found");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("served by the control plane"), "{problem}");

    // Too many headers, too long a query: problems naming the rule.
    let mut many = reqwest::Client::new().get(&whoami).bearer_auth(&admin);
    for i in 0..150 {
        many = many.header(format!("x-extra-{i}"), "1");
    }
    let response = many.send().await?;
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: Value = response.json().await?;
    assert_eq!(
        problem["type"],
        "https://sluice.dev/problems/headers-too-large"
    );
    assert_eq!(problem["rule"], "count", "{problem}");
    let long = format!("{whoami}?pad={}", "a".repeat(10_000));
    let (status, _, problem) = send(Method::GET, &long, &admin).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG, "{problem}");
    assert_eq!(problem["type"], "https://sluice.dev/problems/uri-too-long");
    assert_eq!(problem["field"], "uri", "{problem}");

    // JSON bodies, by the rule the control plane shares: the type must say
    // JSON, no key twice, text that is not JSON is malformed; an empty
    // body is `{}` whatever its type.
    let publish = format!("{}/v1/exchanges/orders/publish", broker.url);
    let message = r#"{"messages":[{"body":"hi"}]}"#;
    let cases: [(Option<&str>, &str, StatusCode, &str); 7] = [
        (
            Some("text/plain"),
            message,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            message,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            None,
            message,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            Some("application/json"),
            r#"{"messages":[{"body":"a","body":"b"}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
        (
            Some("application/json"),
            r#"{"messages":[{"body":"a","headers":{"h":1,"h":2}}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
        (
            Some("application/json"),
            r#"{"messages": ["#,
            StatusCode::BAD_REQUEST,
            "malformed-json",
        ),
        (None, "", StatusCode::UNPROCESSABLE_ENTITY, "validation"),
    ];
    for (content_type, body, status, kind) in cases {
        let mut request = reqwest::Client::new()
            .post(&publish)
            .bearer_auth(&admin)
            .body(body.to_string());
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = request.send().await?;
        let got = response.status();
        let problem: Value = response.json().await?;
        assert_eq!(got, status, "{content_type:?} {body}: {problem}");
        assert_eq!(
            problem["type"],
            format!("https://sluice.dev/problems/{kind}"),
            "{problem}"
        );
        if kind == "validation" && !body.is_empty() {
            assert_eq!(problem["rule"], "duplicate-key", "{problem}");
        }
    }
    Ok(())
}

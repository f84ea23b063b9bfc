//! Publish rate quotas at the broker: over the tenant's messages/s the
//! publish is refused whole with 429 and `Retry-After` (nothing stored, never
//! a silent drop), a batch bigger than a second of quota is a 422, and the
//! quota comes from the control plane's feed.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::Deployment;

fn batch(n: usize) -> Value {
    json!({ "messages": (0..n).map(|i| json!({"body": format!("m{i}")})).collect::<Vec<_>>() })
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_rate_is_429_with_retry_after_and_nothing_stored() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    sluice
        .set_quotas(json!({"publish_messages_per_second": 5}))
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(&sluice.admin, "/v1/queues/jobs", json!({}))
        .await?;

    let (status, body) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/jobs/messages",
            Some(&app),
            Some(batch(6)),
        )
        .await?;
    assert_eq!(
        (status, body["field"].as_str(), body["rule"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("messages"),
            Some("rate-quota")
        ),
        "{body}"
    );

    let (status, body) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/jobs/messages",
            Some(&app),
            Some(batch(5)),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = reqwest::Client::new()
        .post(format!("{}/v1/queues/jobs/messages", sluice.broker.url))
        .bearer_auth(&app)
        .json(&batch(3))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let problem: Value = response.json().await?;
    assert_eq!(problem["type"], "https://sluice.dev/problems/rate-limited");

    // Exactly the five admitted messages are in the queue.
    let (_, stats) = sluice
        .data
        .call(Method::GET, "/v1/queues/jobs/stats", Some(&app), None)
        .await?;
    assert_eq!(stats["ready"], 5, "{stats}");

    // The broker's metrics agree: five ready, five published, one refusal.
    let metrics = reqwest::get(&sluice.broker.metrics_url)
        .await?
        .text()
        .await?;
    let line = |name: &str, needle: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(needle))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
    };
    assert_eq!(
        line("sluice_queue_messages{", "state=\"ready\"").as_deref(),
        Some("5"),
        "{metrics}"
    );
    assert_eq!(
        line("sluice_published_messages_total{", "queue=\"jobs\"").as_deref(),
        Some("5"),
        "{metrics}"
    );
    assert_eq!(
        line("sluice_publish_rate_limited_total{", "tenant=\"acme\"").as_deref(),
        Some("1"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_byte_rate_through_an_exchange_is_429_and_nothing_stored() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    sluice
        .set_quotas(json!({"publish_bytes_per_second": 8192}))
        .await?;
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/exchanges/fan", json!({"type": "fanout"}))
        .await?;
    sluice.declare(admin, "/v1/queues/a", json!({})).await?;
    sluice.declare(admin, "/v1/queues/b", json!({})).await?;
    sluice.bind("fan", "a", "").await?;
    sluice.bind("fan", "b", "").await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;
    let kib = |n: usize| json!({"messages": [{"body": "x".repeat(n << 10)}]});

    // 6 KiB fits the 8 KiB/s bucket; another 6 KiB right after does not.
    let (status, body) = sluice
        .data
        .call(
            Method::POST,
            "/v1/exchanges/fan/publish",
            Some(&app),
            Some(kib(6)),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = reqwest::Client::new()
        .post(format!("{}/v1/exchanges/fan/publish", sluice.broker.url))
        .bearer_auth(&app)
        .json(&kib(6))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    let problem: Value = response.json().await?;
    assert_eq!(
        problem["type"], "https://sluice.dev/problems/rate-limited",
        "{problem}"
    );

    // A message bigger than a whole second of byte quota can never pass: 422.
    let (status, problem) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/a/messages",
            Some(&app),
            Some(kib(9)),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["rule"], "rate-quota", "{problem}");

    // Exactly the first message reached each queue.
    for queue in ["a", "b"] {
        assert_eq!(sluice.stats(&app, queue).await?["ready"], 1, "{queue}");
    }
    Ok(())
}

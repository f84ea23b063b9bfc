//! A queue's activity, counted: a known number of messages is published,
//! delivered, redelivered (a nack that requeues, a lease that runs out),
//! acked and dead-lettered (a nack to dead-letter, the delivery limit), and
//! the broker's Prometheus counters say exactly those numbers — for the
//! queue, for its dead-letter queue (which the forwarder published to) and
//! for the tenant — while the stats on the broker and on the control plane
//! show non-zero rates right after. Another tenant's key cannot read the
//! stats (404). Once the queue is deleted its series are gone from
//! `/metrics`; the tenant's counters stay. The series are served on the
//! operator's metrics listener only: the data port's `/metrics` is a 404
//! problem naming no tenant.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Deployment, eventually};

async fn metrics(sluice: &Deployment) -> anyhow::Result<String> {
    Ok(reqwest::get(&sluice.broker.metrics_url)
        .await?
        .text()
        .await?)
}

/// The value of `name`'s sample whose labels are exactly `labels`.
fn value(text: &str, name: &str, labels: &str) -> Option<u64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn queue(name: &str) -> String {
    format!("tenant=\"acme\",queue=\"{name}\"")
}

async fn receive(
    sluice: &Deployment,
    key: &str,
    max: u32,
    lease_ms: Option<u64>,
) -> anyhow::Result<Vec<Value>> {
    let mut request = json!({"max_messages": max, "wait_ms": 5000});
    if let Some(lease_ms) = lease_ms {
        request["lease_ms"] = json!(lease_ms);
    }
    let (status, body) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/work/receive",
            Some(key),
            Some(request),
        )
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "receive: {status} {body}");
    Ok(body["messages"].as_array().cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_are_exact_rates_show_and_a_deleted_queue_leaves_metrics() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/exchanges/dlx", json!({"type": "fanout"}))
        .await?;
    sluice
        .declare(admin, "/v1/queues/work-dlq", json!({}))
        .await?;
    sluice
        .declare(
            admin,
            "/v1/queues/work",
            json!({"dead_letter_exchange": "dlx", "delivery_limit": 2}),
        )
        .await?;
    sluice.bind("dlx", "work-dlq", "").await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    let messages = (0..6).map(|i| json!({"body": format!("m{i}")})).collect();
    sluice.publish_to_queue(&app, "work", messages).await?;

    // Six deliveries: five on the default lease, the last on a short one.
    let mut first = receive(&sluice, &app, 5, None).await?;
    assert_eq!(first.len(), 5);
    let short = receive(&sluice, &app, 1, Some(300)).await?;
    assert_eq!(short.len(), 1);
    let short_body = short[0]["body"].clone();
    first.extend(short);
    sluice.ack(&app, "work", &first[0]).await?;
    sluice.ack(&app, "work", &first[1]).await?;
    let requeued = sluice.nack(&app, "work", &first[2], "requeue_now").await?;
    assert_eq!(requeued["outcome"], "requeued", "{requeued}");
    for message in &first[3..5] {
        let answer = sluice.nack(&app, "work", message, "dead_letter").await?;
        assert_eq!(answer["outcome"], "dead_lettered", "{answer}");
    }

    // The nacked message and, once its lease ran out, the short-leased one
    // come back: two redeliveries.
    let mut again = Vec::new();
    while again.len() < 2 {
        let got = receive(&sluice, &app, 2, None).await?;
        anyhow::ensure!(!got.is_empty(), "nothing came back; got {again:?}");
        again.extend(got);
    }
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|m| m["delivery_count"] == 2), "{again:?}");
    for message in &again {
        if message["body"] == short_body {
            // The second delivery is the limit: a requeue dead-letters it.
            let answer = sluice.nack(&app, "work", message, "requeue_now").await?;
            assert_eq!(answer["outcome"], "dead_lettered", "{answer}");
        } else {
            sluice.ack(&app, "work", message).await?;
        }
    }

    // Rates right after: every kind of event happened within the window.
    let stats = sluice.stats(&app, "work").await?;
    for rate in ["publish", "deliver", "ack", "redeliver", "dead_letter"] {
        let value = stats["rates"][rate].as_f64().unwrap_or(0.0);
        assert!(value > 0.0, "broker stats rates.{rate}: {stats}");
    }
    let (status, read) = sluice
        .api
        .call(Method::GET, "/v1/queues/work", Some(admin), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{read}");
    for rate in ["publish", "deliver", "ack", "redeliver", "dead_letter"] {
        let value = read["stats"]["rates"][rate].as_f64().unwrap_or(0.0);
        assert!(value > 0.0, "control plane stats.rates.{rate}: {read}");
    }
    assert_eq!(read["stats"]["ready"], 0, "{read}");
    assert!(read["stats"]["consumers"].is_u64(), "{read}");

    // The three dead letters reach the dead-letter queue.
    let arrived = eventually(Duration::from_secs(10), || async {
        matches!(sluice.stats(&app, "work-dlq").await, Ok(s) if s["ready"] == 3)
    })
    .await;
    assert!(arrived, "dead letters did not arrive");

    let text = metrics(&sluice).await?;
    // The series name the tenant and its queues, so the tenants' data port
    // does not serve them: `/metrics` there is the unknown-route problem.
    assert!(text.contains(r#"tenant="acme""#), "{text}");
    let response = reqwest::get(format!("{}/metrics", sluice.broker.url)).await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let body = response.text().await?;
    let problem: Value = serde_json::from_str(&body)?;
    assert_eq!(problem["status"], 404, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/not-found")),
        "{problem}"
    );
    assert!(
        !body.contains("acme") && !body.contains("work"),
        "the data port's /metrics names tenant data: {body}"
    );
    let expected = [
        ("sluice_published_messages_total", 6),
        ("sluice_delivered_messages_total", 8),
        ("sluice_redelivered_messages_total", 2),
        ("sluice_acked_messages_total", 3),
        ("sluice_nacked_messages_total", 4),
        ("sluice_dead_lettered_messages_total", 3),
    ];
    for (name, n) in expected {
        assert_eq!(
            value(&text, name, &queue("work")),
            Some(n),
            "{name}\n{text}"
        );
    }
    assert_eq!(
        value(&text, "sluice_published_messages_total", &queue("work-dlq")),
        Some(3),
        "the forwarder's publishes count in the dead-letter queue\n{text}"
    );
    let ready = format!("{},state=\"ready\"", queue("work-dlq"));
    assert_eq!(value(&text, "sluice_queue_messages", &ready), Some(3));
    let tenant = "tenant=\"acme\"";
    let per_tenant = [
        ("sluice_tenant_published_messages_total", 9),
        ("sluice_tenant_delivered_messages_total", 8),
        ("sluice_tenant_acked_messages_total", 3),
        ("sluice_tenant_dead_lettered_messages_total", 3),
    ];
    for (name, n) in per_tenant {
        assert_eq!(value(&text, name, tenant), Some(n), "{name}\n{text}");
    }

    // Another tenant's key: the queue does not exist for it.
    let other_admin = sluice.tenant(&sluice.operator, "globex").await?;
    let other = sluice.key(&other_admin, &["consume"]).await?;
    let (status, body) = sluice
        .data
        .call(Method::GET, "/v1/queues/work/stats", Some(&other), None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = sluice
        .api
        .call(Method::GET, "/v1/queues/work", Some(&other_admin), None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Deleted: its series go with its group; the tenant's counters stay.
    let (status, body) = sluice
        .api
        .call(Method::DELETE, "/v1/queues/work", Some(admin), None)
        .await?;
    assert!(status.is_success(), "{status} {body}");
    let work = queue("work");
    let gone = eventually(Duration::from_secs(10), || async {
        matches!(metrics(&sluice).await, Ok(text) if !text.contains(&work))
    })
    .await;
    let text = metrics(&sluice).await?;
    assert!(gone, "series of the deleted queue remain:\n{text}");
    assert_eq!(value(&text, "sluice_queue_messages", &ready), Some(3));
    assert_eq!(
        value(&text, "sluice_tenant_published_messages_total", tenant),
        Some(9)
    );

    // A deleted tenant's counters go with it.
    sluice
        .declare(&other_admin, "/v1/queues/jobs", json!({}))
        .await?;
    let publisher = sluice.key(&other_admin, &["publish"]).await?;
    sluice
        .publish_to_queue(&publisher, "jobs", vec![json!({"body": "x"})])
        .await?;
    let globex = "tenant=\"globex\"";
    let text = metrics(&sluice).await?;
    assert_eq!(
        value(&text, "sluice_tenant_published_messages_total", globex),
        Some(1),
        "{text}"
    );
    let (status, body) = sluice
        .api
        .call(
            Method::DELETE,
            "/v1/tenants/globex",
            Some(&sluice.operator),
            None,
        )
        .await?;
    assert!(status.is_success(), "{status} {body}");
    let gone = eventually(Duration::from_secs(10), || async {
        matches!(metrics(&sluice).await, Ok(text) if !text.contains(globex))
    })
    .await;
    assert!(gone, "series of the deleted tenant remain");
    let text = metrics(&sluice).await?;
    assert_eq!(
        value(&text, "sluice_tenant_published_messages_total", tenant),
        Some(9)
    );
    Ok(())
}

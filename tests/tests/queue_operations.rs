//! The queue operations between publish and ack, end to end: a delayed
//! message is delivered no earlier than due, a per-message expiration
//! dead-letters it, `nack` with `requeue_after` hides a delivery for its
//! delay, `extend` keeps a lease past its first deadline, `peek` browses
//! without consuming, `purge` empties the ready messages and leaves leased
//! ones; the overflow policies `drop-head` and `dead-letter` keep the newest
//! or dead-letter the refused message. Another tenant's key reaches none of
//! these queue endpoints.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Deployment, int_field};

/// Receives until a message arrives or `timeout` passes.
async fn first_message(
    sluice: &Deployment,
    key: &str,
    queue: &str,
    timeout: Duration,
) -> anyhow::Result<Option<Value>> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(message) = sluice.receive(key, queue, 1, 500).await?.into_iter().next() {
            return Ok(Some(message));
        }
    }
    Ok(None)
}

async fn post(sluice: &Deployment, key: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = sluice
        .data
        .call(Method::POST, path, Some(key), Some(body))
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "{path}: {status} {answer}");
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread")]
async fn delay_expiration_requeue_after_extend_peek_and_purge() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/exchanges/dlx", json!({"type": "fanout"}))
        .await?;
    sluice.declare(admin, "/v1/queues/dead", json!({})).await?;
    sluice.bind("dlx", "dead", "").await?;
    sluice
        .declare(
            admin,
            "/v1/queues/work",
            json!({"dead_letter_exchange": "dlx", "lease_ms": 30000}),
        )
        .await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    // Per-message delay: invisible until due, then delivered.
    let published = Instant::now();
    sluice
        .publish_to_queue(
            &app,
            "work",
            vec![json!({"body": "later", "delay_ms": 1000})],
        )
        .await?;
    let stats = sluice.stats(&app, "work").await?;
    assert_eq!(
        (stats["ready"].as_u64(), stats["delayed"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(sluice.receive(&app, "work", 1, 0).await?.is_empty());
    let later = first_message(&sluice, &app, "work", Duration::from_secs(10))
        .await?
        .expect("the delayed message is delivered once due");
    assert!(published.elapsed() >= Duration::from_millis(1000));
    assert_eq!(later["body"], "later");

    // nack requeue_after: hidden for its delay, then redelivered.
    let nacked = post(
        &sluice,
        &app,
        "/v1/queues/work/nack",
        json!({"receipt": later["receipt"], "action": "requeue_after", "delay_ms": 800}),
    )
    .await?;
    assert_eq!(nacked["outcome"], "delayed", "{nacked}");
    let nacked_at = Instant::now();
    assert!(sluice.receive(&app, "work", 1, 0).await?.is_empty());
    let again = first_message(&sluice, &app, "work", Duration::from_secs(10))
        .await?
        .expect("redelivered after the nack delay");
    assert!(nacked_at.elapsed() >= Duration::from_millis(700));
    assert_eq!(again["redelivered"], true, "{again}");
    assert_eq!(again["delivery_count"], 2, "{again}");

    // extend: a 600 ms lease extended to 30 s is not redelivered at 1.5 s.
    sluice.ack(&app, "work", &again).await?;
    sluice
        .publish_to_queue(&app, "work", vec![json!({"body": "slow job"})])
        .await?;
    let leased = post(
        &sluice,
        &app,
        "/v1/queues/work/receive",
        json!({"lease_ms": 600}),
    )
    .await?["messages"][0]
        .clone();
    let extended = post(
        &sluice,
        &app,
        "/v1/queues/work/extend",
        json!({"receipt": leased["receipt"], "lease_ms": 30000}),
    )
    .await?;
    assert!(
        int_field(&extended, "lease_deadline_ms") > int_field(&leased, "lease_deadline_ms"),
        "{extended} vs {leased}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sluice.receive(&app, "work", 1, 0).await?.is_empty());
    sluice.ack(&app, "work", &leased).await?;

    // Per-message expiration: dead-lettered with the reason, never delivered.
    sluice
        .publish_to_queue(
            &app,
            "work",
            vec![json!({"body": "quote", "expiration_ms": 300})],
        )
        .await?;
    let dead = first_message(&sluice, &app, "dead", Duration::from_secs(10))
        .await?
        .expect("the expired message is dead-lettered");
    assert_eq!(dead["body"], "quote");
    assert_eq!(dead["headers"]["x-death-reason"], "expired", "{dead}");
    assert!(sluice.receive(&app, "work", 1, 0).await?.is_empty());

    // peek browses without leasing; purge removes ready messages only.
    let three: Vec<Value> = (0..3).map(|i| json!({"body": format!("p{i}")})).collect();
    sluice.publish_to_queue(&app, "work", three).await?;
    let held = sluice.receive(&app, "work", 1, 0).await?;
    assert_eq!(held[0]["body"], "p0");
    let (status, peeked) = sluice
        .data
        .call(Method::GET, "/v1/queues/work/peek?max=10", Some(&app), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{peeked}");
    let peeked: Vec<&Value> = peeked["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(peeked.len(), 2);
    assert_eq!(
        (peeked[0]["body"].as_str(), peeked[1]["body"].as_str()),
        (Some("p1"), Some("p2"))
    );
    assert_eq!(sluice.stats(&app, "work").await?["ready"], 2);
    let purged = post(&sluice, &app, "/v1/queues/work/purge", json!({})).await?;
    assert_eq!(purged["purged"], 2, "{purged}");
    let stats = sluice.stats(&app, "work").await?;
    assert_eq!(
        (stats["ready"].as_u64(), stats["unacked"].as_u64()),
        (Some(0), Some(1))
    );
    sluice.ack(&app, "work", &held[0]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn overflow_drop_head_and_dead_letter() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/exchanges/overflowed", json!({"type": "fanout"}))
        .await?;
    sluice.declare(admin, "/v1/queues/spill", json!({})).await?;
    sluice.bind("overflowed", "spill", "").await?;
    sluice
        .declare(admin, "/v1/queues/latest", json!({"max_length": 2}))
        .await?;
    sluice
        .declare(
            admin,
            "/v1/queues/bounded",
            json!({"max_length": 2, "overflow": "dead-letter", "dead_letter_exchange": "overflowed"}),
        )
        .await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;
    let four: Vec<Value> = (1..=4).map(|i| json!({"body": format!("m{i}")})).collect();

    // drop-head: the queue keeps the newest two.
    let answer = sluice
        .publish_to_queue(&app, "latest", four.clone())
        .await?;
    assert!(
        answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| r["status"] == "stored"),
        "{answer}"
    );
    let kept: Vec<Value> = sluice.receive(&app, "latest", 10, 0).await?;
    let kept: Vec<&str> = kept.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(kept, ["m3", "m4"]);

    // dead-letter: the refused messages are reported and dead-lettered.
    let answer = sluice.publish_to_queue(&app, "bounded", four).await?;
    let statuses: Vec<&str> = answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(
        statuses,
        ["stored", "stored", "dead_lettered", "dead_lettered"],
        "{answer}"
    );
    let mut spilled = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while spilled.len() < 2 && Instant::now() < deadline {
        spilled.extend(sluice.receive(&app, "spill", 10, 500).await?);
    }
    let bodies: Vec<&str> = spilled.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["m3", "m4"]);
    assert_eq!(
        spilled[0]["headers"]["x-death-reason"], "maxlen",
        "{}",
        spilled[0]
    );
    assert_eq!(sluice.stats(&app, "bounded").await?["ready"], 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_key_reaches_no_queue_endpoint() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/queues/private", json!({}))
        .await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;
    sluice
        .publish_to_queue(&app, "private", vec![json!({"body": "secret"})])
        .await?;
    let held = sluice.receive(&app, "private", 1, 0).await?;
    let receipt = held[0]["receipt"].clone();

    let operator = sluice.control.operator_key.clone();
    let other_admin = sluice.tenant(&operator, "globex").await?;
    let other = sluice.key(&other_admin, &["publish", "consume"]).await?;
    let calls: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/queues/private/ack",
            Some(json!({"receipts": [receipt.clone()]})),
        ),
        (
            Method::POST,
            "/v1/queues/private/nack",
            Some(json!({"receipt": receipt.clone()})),
        ),
        (
            Method::POST,
            "/v1/queues/private/extend",
            Some(json!({"receipt": receipt.clone(), "lease_ms": 1000})),
        ),
        (Method::GET, "/v1/queues/private/peek", None),
        (Method::POST, "/v1/queues/private/purge", Some(json!({}))),
        (Method::GET, "/v1/queues/private/stats", None),
        (
            Method::POST,
            "/v1/queues/private/redrive",
            Some(json!({"max_messages": 1, "to_queue": "private"})),
        ),
    ];
    for (method, path, body) in calls {
        let (status, problem) = sluice.data.call(method, path, Some(&other), body).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
        assert_eq!(
            problem["type"], "https://sluice.dev/problems/not-found",
            "{path}: {problem}"
        );
    }
    // Nothing the other tenant sent touched the message: still leased, still there.
    let stats = sluice.stats(&app, "private").await?;
    assert_eq!(
        (stats["ready"].as_u64(), stats["unacked"].as_u64()),
        (Some(0), Some(1))
    );
    sluice.ack(&app, "private", &held[0]).await?;
    Ok(())
}

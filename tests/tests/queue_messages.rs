//! Publish → receive → ack against a real control plane and broker: a
//! declared queue takes messages at once (no sleep), leases expire and
//! redeliver, nacks requeue, and the data API's errors are RFC 7807
//! problems (another tenant's queue 404, a publish-only key 403, bad input
//! 422 naming the field).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment};

async fn receive(data: &Api, key: &str, queue: &str, body: Value) -> anyhow::Result<Vec<Value>> {
    let (status, answer) = data
        .call(
            Method::POST,
            &format!("/v1/queues/{queue}/receive"),
            Some(key),
            Some(body),
        )
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "receive: {status} {answer}");
    Ok(answer["messages"].as_array().cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn declare_publish_receive_ack_lease_and_nack() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    let data = &sluice.data;
    sluice
        .declare(&sluice.admin, "/v1/queues/jobs", json!({"lease_ms": 30000}))
        .await?;

    // Declared → published at once, no sleep: the declare returned after the
    // broker opened the queue's group.
    let (status, published) = data
        .call(
            Method::POST,
            "/v1/queues/jobs/messages",
            Some(&app),
            Some(json!({"messages": [
                {"body": "first", "message_id": "m1", "headers": {"k": "v"}},
                {"body": "AAEC", "body_encoding": "base64", "content_type": "application/octet-stream"}
            ]})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{published}");
    assert_eq!(published["results"][0]["status"], "stored");
    assert_eq!(published["results"][1]["queues"], 1);

    let (_, stats) = data
        .call(Method::GET, "/v1/queues/jobs/stats", Some(&app), None)
        .await?;
    assert_eq!(stats["ready"], 2, "{stats}");

    let messages = receive(data, &app, "jobs", json!({"max_messages": 10})).await?;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["body"], "first");
    assert_eq!(messages[0]["body_encoding"], "utf8");
    assert_eq!(messages[0]["message_id"], "m1");
    assert_eq!(messages[0]["headers"]["k"], "v");
    assert_eq!(messages[0]["redelivered"], false);
    assert_eq!(messages[0]["delivery_count"], 1);
    assert_eq!(messages[1]["body"], "AAEC");
    assert_eq!(messages[1]["body_encoding"], "base64");
    let receipts: Vec<Value> = messages.iter().map(|m| m["receipt"].clone()).collect();
    // Receipts are sealed: a guessed or altered one is refused, all or nothing.
    let sealed = receipts[0].as_str().unwrap_or_default();
    let (plain, _) = sealed.split_once('.').unwrap_or_default();
    assert!(
        !plain.is_empty(),
        "a receipt is <seq>-<delivery>.<mac>: {sealed}"
    );
    let guessed = plain.replace("-1", "-2");
    for forged in [
        plain.to_string(),
        format!("{guessed}.{}", &sealed[plain.len() + 1..]),
    ] {
        let (status, problem) = data
            .call(
                Method::POST,
                "/v1/queues/jobs/ack",
                Some(&app),
                Some(json!({"receipts": [receipts[1], forged]})),
            )
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["field"], "receipts[1]", "{problem}");
    }
    let (status, acked) = data
        .call(
            Method::POST,
            "/v1/queues/jobs/ack",
            Some(&app),
            Some(json!({"receipts": receipts})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["results"][0]["status"], "ok");
    assert_eq!(acked["results"][1]["status"], "ok");
    // Acking again: per-receipt error, not a failed request.
    let (_, again) = data
        .call(
            Method::POST,
            "/v1/queues/jobs/ack",
            Some(&app),
            Some(json!({"receipts": [receipts[0]]})),
        )
        .await?;
    assert_eq!(again["results"][0]["status"], "error", "{again}");

    // Long-poll: a receive waiting on an empty queue is woken by a publish.
    let waiter = {
        let data = Api::new(&sluice.data.base);
        let app = app.clone();
        tokio::spawn(async move {
            receive(
                &data,
                &app,
                "jobs",
                json!({"wait_ms": 10000, "lease_ms": 300}),
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    data.call(
        Method::POST,
        "/v1/queues/jobs/messages",
        Some(&app),
        Some(json!({"messages": [{"body": "leased"}]})),
    )
    .await?;
    let woken = waiter.await??;
    assert_eq!(woken.len(), 1);
    assert!(started.elapsed().as_millis() < 5000);

    // The 300 ms lease runs out (the group's timer ticks): redelivered.
    let redelivered = receive(data, &app, "jobs", json!({"wait_ms": 5000})).await?;
    assert_eq!(redelivered.len(), 1, "the expired lease should redeliver");
    assert_eq!(redelivered[0]["body"], "leased");
    assert_eq!(redelivered[0]["redelivered"], true);
    assert_eq!(redelivered[0]["delivery_count"], 2);
    // The first delivery's receipt is stale now.
    let (status, stale) = data
        .call(
            Method::POST,
            "/v1/queues/jobs/nack",
            Some(&app),
            Some(json!({"receipt": woken[0]["receipt"], "action": "requeue"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{stale}");

    // Nack requeue: back at once, delivered a third time.
    let (status, nacked) = data
        .call(
            Method::POST,
            "/v1/queues/jobs/nack",
            Some(&app),
            Some(json!({"receipt": redelivered[0]["receipt"], "action": "requeue_now"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{nacked}");
    assert_eq!(nacked["outcome"], "requeued");
    let third = receive(data, &app, "jobs", json!({})).await?;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0]["delivery_count"], 3);
    let (status, _) = data
        .call(
            Method::POST,
            "/v1/queues/jobs/ack",
            Some(&app),
            Some(json!({"receipts": [third[0]["receipt"]]})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (_, stats) = data
        .call(Method::GET, "/v1/queues/jobs/stats", Some(&app), None)
        .await?;
    assert_eq!(
        (stats["ready"].as_u64(), stats["unacked"].as_u64()),
        (Some(0), Some(0))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn data_api_errors_are_problems() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let data = &sluice.data;
    sluice
        .declare(&sluice.admin, "/v1/queues/private", json!({}))
        .await?;
    let publisher = sluice.key(&sluice.admin, &["publish"]).await?;
    let consumer = sluice.key(&sluice.admin, &["consume"]).await?;

    // A publish-only key cannot receive; a consume-only key cannot publish.
    let (status, problem) = data
        .call(
            Method::POST,
            "/v1/queues/private/receive",
            Some(&publisher),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["type"], "https://sluice.dev/problems/forbidden");
    let (status, _) = data
        .call(
            Method::POST,
            "/v1/queues/private/messages",
            Some(&consumer),
            Some(json!({"messages": [{"body": "x"}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Another tenant's key: the queue does not exist for it (404, not 403).
    let operator = sluice.control.operator_key.clone();
    let other_admin = sluice.tenant(&operator, "globex").await?;
    let other = sluice.key(&other_admin, &["publish", "consume"]).await?;
    let (status, problem) = data
        .call(
            Method::POST,
            "/v1/queues/private/messages",
            Some(&other),
            Some(json!({"messages": [{"body": "x"}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (status, _) = data
        .call(
            Method::POST,
            "/v1/queues/private/receive",
            Some(&other),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bad input: 422 naming the field.
    let cases = [
        (
            json!({"messages": [{"body": "x", "body_encoding": "rot13"}]}),
            "messages[0].body_encoding",
        ),
        (
            json!({"messages": [{"body": "!!", "body_encoding": "base64"}]}),
            "messages[0].body",
        ),
        (
            json!({"messages": [{"routing_key": "x"}]}),
            "messages[0].body",
        ),
        (json!({"messages": []}), "messages"),
        (json!({}), "messages"),
    ];
    for (body, field) in cases {
        let (status, problem) = data
            .call(
                Method::POST,
                "/v1/queues/private/messages",
                Some(&publisher),
                Some(body),
            )
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert_eq!(problem["type"], "https://sluice.dev/problems/validation");
    }
    let (status, problem) = data
        .call(
            Method::POST,
            "/v1/queues/private/receive",
            Some(&consumer),
            Some(json!({"max_messages": 0})),
        )
        .await?;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("max_messages"))
    );
    let (status, problem) = data
        .call(
            Method::POST,
            "/v1/queues/private/ack",
            Some(&consumer),
            Some(json!({"receipts": ["nope"]})),
        )
        .await?;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("receipts[0]"))
    );

    // Over the tenant's max_message_bytes (256 KiB by default): 413 naming the body.
    let big = "x".repeat(300 * 1024);
    let (status, problem) = data
        .call(
            Method::POST,
            "/v1/queues/private/messages",
            Some(&publisher),
            Some(json!({"messages": [{"body": "small"}, {"body": big}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert_eq!(problem["field"], "messages[1].body");
    Ok(())
}

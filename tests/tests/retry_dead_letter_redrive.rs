//! Retry with backoff, then dead-letter, then redrive (the seed notes'
//! retry queue + DLX pattern, in one queue setting): a message nacked three
//! times comes back after growing delays, lands in the dead-letter queue
//! with the reason and its original queue in its headers, and a redrive
//! puts it back where it came from, where it is consumed successfully.
//! A redrive left unsettled (its target refused the message) goes to that
//! same target after the broker is killed and restarted.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Deployment, PushConsumer, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn retries_back_off_then_dead_letter_and_redrive_back() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/exchanges/dlx", json!({"type": "fanout"}))
        .await?;
    sluice
        .declare(admin, "/v1/queues/orders-dlq", json!({}))
        .await?;
    sluice
        .declare(
            admin,
            "/v1/queues/orders",
            json!({
                "retry": {"initial_delay_ms": 100, "multiplier": 2, "max_delay_ms": 400},
                "delivery_limit": 3,
                "dead_letter_exchange": "dlx",
            }),
        )
        .await?;
    sluice.bind("dlx", "orders-dlq", "").await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;
    let operator = sluice.key(admin, &["manage"]).await?;

    sluice
        .publish_to_queue(
            &app,
            "orders",
            vec![json!({"body": "order 42", "message_id": "order-42"})],
        )
        .await?;

    // Three failures, each retried after the backoff (100 ms, then 200 ms).
    let mut nacked_at: Option<Instant> = None;
    for attempt in 1..=3u32 {
        let messages = sluice.receive(&app, "orders", 1, 5000).await?;
        let message = messages.first().expect("the message comes back");
        let now = Instant::now();
        if let Some(then) = nacked_at {
            let backoff = Duration::from_millis(100 * 2u64.pow(attempt - 2));
            assert!(
                now - then >= backoff,
                "attempt {attempt} came after {:?}, before the {backoff:?} backoff",
                now - then
            );
        }
        assert_eq!(message["delivery_count"], attempt);
        // Taken before the nack is sent: the backoff runs from when it is
        // applied, which is later, so this is a safe lower bound.
        let sent = Instant::now();
        let answer = sluice.nack(&app, "orders", message, "requeue").await?;
        nacked_at = Some(sent);
        let expected = if attempt < 3 {
            "delayed"
        } else {
            "dead_lettered"
        };
        assert_eq!(answer["outcome"], expected, "{answer}");
    }

    // Dead-lettered with why and from where.
    let arrived = eventually(Duration::from_secs(20), || async {
        matches!(sluice.stats(&app, "orders-dlq").await, Ok(s) if s["ready"] == 1)
    })
    .await;
    assert!(arrived, "the dead letter reaches the DLQ");
    let (_, peeked) = sluice
        .data
        .call(Method::GET, "/v1/queues/orders-dlq/peek", Some(&app), None)
        .await?;
    let dead = &peeked["messages"][0];
    assert_eq!(dead["body"], "order 42");
    assert_eq!(
        dead["headers"]["x-death-reason"], "delivery_limit",
        "{dead}"
    );
    assert_eq!(dead["headers"]["x-death-queue"], "orders", "{dead}");
    assert_eq!(dead["headers"]["x-death-count"], "1", "{dead}");

    // Bad redrives are refused, naming the field.
    let (status, problem) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/orders-dlq/redrive",
            Some(&operator),
            Some(json!({"max_messages": 0})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "max_messages");
    let (status, _) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/orders-dlq/redrive",
            Some(&operator),
            Some(json!({"max_messages": 5, "to_exchange": "nope"})),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Redrive: back to the queue it came from (its x-death-queue).
    let (status, redriven) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/orders-dlq/redrive",
            Some(&operator),
            Some(json!({"max_messages": 100})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{redriven}");
    assert_eq!(redriven["redriven"], 1, "{redriven}");
    assert_eq!(redriven["messages"][0]["queues"], json!(["orders"]));
    let dlq = sluice.stats(&app, "orders-dlq").await?;
    assert_eq!(
        (dlq["ready"].as_u64(), dlq["outbox"].as_u64()),
        (Some(0), Some(0)),
        "{dlq}"
    );

    // Consumed successfully this time, a fresh message in its queue.
    let mut consumer = PushConsumer::connect(&sluice.data, &app, "orders", "prefetch=1").await?;
    let message = consumer
        .next_message(Duration::from_secs(5))
        .await?
        .expect("the redriven message is delivered");
    assert_eq!(message["body"], "order 42");
    assert_eq!(message["message_id"], "order-42");
    assert_eq!(message["delivery_count"], 1);
    sluice.ack(&app, "orders", &message).await?;
    let orders = sluice.stats(&app, "orders").await?;
    assert_eq!(
        (orders["ready"].as_u64(), orders["unacked"].as_u64()),
        (Some(0), Some(0))
    );
    // Redrive elsewhere: to a named queue, or through an exchange.
    sluice
        .declare(admin, "/v1/queues/parking", json!({}))
        .await?;
    sluice
        .publish_to_queue(
            &app,
            "orders-dlq",
            vec![
                json!({"body": "p1"}),
                json!({"body": "p2", "routing_key": "parking"}),
            ],
        )
        .await?;
    for (target, body) in [
        (json!({"max_messages": 1, "to_queue": "parking"}), "p1"),
        (json!({"max_messages": 1, "to_exchange": "default"}), "p2"),
    ] {
        let (status, answer) = sluice
            .data
            .call(
                Method::POST,
                "/v1/queues/orders-dlq/redrive",
                Some(&operator),
                Some(target),
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            answer["messages"][0]["queues"],
            json!(["parking"]),
            "{answer}"
        );
        let moved = sluice.receive(&app, "parking", 1, 0).await?;
        assert_eq!(moved[0]["body"], body);
    }
    Ok(())
}

/// Declares `orders`, its DLQ holding "order 7" and a full `parking`
/// queue, and redrives the DLQ into `parking`, which refuses it: the
/// message stays in the DLQ's outbox. Returns the app key.
async fn refused_redrive(sluice: &Deployment) -> anyhow::Result<String> {
    let admin = sluice.admin.clone();
    for (queue, spec) in [
        ("orders", json!({})),
        ("orders-dlq", json!({})),
        (
            "parking",
            json!({"max_length": 1, "overflow": "reject-publish"}),
        ),
    ] {
        sluice
            .declare(&admin, &format!("/v1/queues/{queue}"), spec)
            .await?;
    }
    let app = sluice.key(&admin, &["publish", "consume"]).await?;
    sluice
        .publish_to_queue(&app, "parking", vec![json!({"body": "in the way"})])
        .await?;
    sluice
        .publish_to_queue(
            &app,
            "orders-dlq",
            vec![json!({"body": "order 7", "headers": {"x-death-queue": "orders"}})],
        )
        .await?;
    let (status, answer) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/orders-dlq/redrive",
            Some(&app),
            Some(json!({"max_messages": 1, "to_queue": "parking"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["failed"], 1, "{answer}");
    let dlq = sluice.stats(&app, "orders-dlq").await?;
    assert_eq!(dlq["outbox"].as_u64(), Some(1), "{dlq}");
    Ok(app)
}

/// Makes room in `parking`, then waits for the outbox to drain and checks
/// the message went to the redrive's target, not its origin.
async fn redrive_lands_in_parking(sluice: &Deployment, app: &str) -> anyhow::Result<()> {
    let blocker = sluice.receive(app, "parking", 1, 0).await?;
    assert_eq!(
        blocker.first().map(|m| &m["body"]),
        Some(&json!("in the way"))
    );
    sluice.ack(app, "parking", &blocker[0]).await?;
    let settled = eventually(Duration::from_secs(10), || async {
        matches!(
            sluice.stats(app, "orders-dlq").await,
            Ok(stats) if stats["outbox"].as_u64() == Some(0)
        )
    })
    .await;
    assert!(settled, "the unsettled redrive was not republished");
    let moved = sluice.receive(app, "parking", 10, 0).await?;
    let bodies: Vec<&Value> = moved.iter().map(|m| &m["body"]).collect();
    assert_eq!(bodies, vec!["order 7"], "it went to the redrive's target");
    let orders = sluice.stats(app, "orders").await?;
    assert_eq!(orders["ready"].as_u64(), Some(0), "not to its origin");
    Ok(())
}

/// A redrive whose target refused the message is retried (every second, by
/// the dead-letter forwarder) until the target has room.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_redrive_is_retried_until_its_target_has_room() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let app = refused_redrive(&sluice).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dlq = sluice.stats(&app, "orders-dlq").await?;
    assert_eq!(dlq["outbox"].as_u64(), Some(1), "still refused: {dlq}");
    redrive_lands_in_parking(&sluice, &app).await
}

/// A broker killed and restarted while a refused redrive waits in the
/// outbox republishes it to that same target (not to the queue it was
/// dead-lettered from) once the target has room.
#[tokio::test(flavor = "multi_thread")]
async fn an_unsettled_redrive_reaches_its_target_after_a_broker_restart() -> anyhow::Result<()> {
    let mut sluice = Deployment::start().await?;
    let app = refused_redrive(&sluice).await?;
    sluice.kill_and_restart_broker()?;
    redrive_lands_in_parking(&sluice, &app).await
}

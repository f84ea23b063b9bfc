//! Dead letters and their routing keys: a message published straight to a
//! queue carries the queue's name as its routing key (RabbitMQ's default
//! exchange), so a direct dead-letter exchange bound by queue name takes it;
//! a dead letter its exchange routes nowhere is counted and shown in the
//! queue's stats and in `/metrics`, never dropped without a trace.

use std::time::Duration;

use serde_json::json;
use sluice_e2e::{Deployment, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_route_by_queue_name_and_the_unroutable_are_counted() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/exchanges/dlx", json!({"type": "direct"}))
        .await?;
    sluice.declare(admin, "/v1/queues/dlq", json!({})).await?;
    for queue in ["orders", "invoices"] {
        sluice
            .declare(
                admin,
                &format!("/v1/queues/{queue}"),
                json!({"dead_letter_exchange": "dlx"}),
            )
            .await?;
    }
    // Only `orders` dead letters have a route: by the queue's name.
    sluice.bind("dlx", "dlq", "orders").await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    for queue in ["orders", "invoices"] {
        sluice
            .publish_to_queue(&app, queue, vec![json!({"body": queue})])
            .await?;
        let messages = sluice.receive(&app, queue, 1, 5000).await?;
        let message = messages.first().expect("the message");
        assert_eq!(message["routing_key"], queue, "{message}");
        let answer = sluice.nack(&app, queue, message, "dead_letter").await?;
        assert_eq!(answer["outcome"], "dead_lettered", "{answer}");
    }

    // `orders`' dead letter arrives, routed by the queue's name.
    let arrived = eventually(Duration::from_secs(20), || async {
        matches!(sluice.stats(&app, "dlq").await, Ok(s) if s["ready"] == 1)
    })
    .await;
    assert!(arrived, "the dead letter routed by queue name arrives");
    let dead = sluice.receive(&app, "dlq", 10, 1000).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["body"], "orders");
    assert_eq!(dead[0]["headers"]["x-death-queue"], "orders");

    // `invoices`' had nowhere to go: counted, not silently gone.
    let counted = eventually(Duration::from_secs(20), || async {
        matches!(sluice.stats(&app, "invoices").await,
            Ok(s) if s["dead_letters_dropped"] == 1 && s["outbox"] == 0)
    })
    .await;
    assert!(
        counted,
        "dropped dead letter counted: {}",
        sluice.stats(&app, "invoices").await?
    );
    let orders = sluice.stats(&app, "orders").await?;
    assert_eq!(orders["dead_letters_dropped"], 0, "{orders}");
    let metrics = sluice.broker.metrics().await?;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("sluice_dead_letters_dropped_total{") && l.contains("queue=\"invoices\"")
        })
        .unwrap_or_default();
    assert!(line.ends_with(" 1"), "metric for invoices: {line:?}");
    Ok(())
}

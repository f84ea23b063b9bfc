//! A dead-lettered message redriven into a queue whose dedup window still
//! holds its message id comes back (a re-entry is not a duplicate publish),
//! and a real re-publish of that id is still deduplicated.

use reqwest::Method;
use serde_json::json;
use sluice_e2e::Deployment;

#[tokio::test(flavor = "multi_thread")]
async fn redrive_is_not_eaten_by_the_dedup_window() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/exchanges/dlx",
            json!({"type": "fanout"}),
        )
        .await?;
    sluice
        .declare(&sluice.admin, "/v1/queues/dlq", json!({}))
        .await?;
    let (status, _) = sluice
        .api
        .call(
            Method::POST,
            "/v1/bindings",
            Some(&sluice.admin),
            Some(json!({"source": "dlx", "destination": "dlq"})),
        )
        .await?;
    assert!(status.is_success());
    let orders = json!({"dedup_window_ms": 600_000, "dead_letter_exchange": "dlx"});
    sluice
        .declare(&sluice.admin, "/v1/queues/orders", orders)
        .await?;

    let message = json!({"messages": [{"body": "order 1001", "message_id": "order-1001"}]});
    let published = sluice
        .data
        .post_ok(&app, "/v1/queues/orders/messages", message.clone())
        .await?;
    assert_eq!(published["results"][0]["status"], "stored");
    let received = sluice
        .data
        .post_ok(&app, "/v1/queues/orders/receive", json!({}))
        .await?;
    let receipt = received["messages"][0]["receipt"].clone();
    sluice
        .data
        .post_ok(
            &app,
            "/v1/queues/orders/nack",
            json!({"receipt": receipt, "action": "dead_letter"}),
        )
        .await?;

    let mut in_dlq = false;
    for _ in 0..250 {
        let (_, stats) = sluice
            .data
            .call(Method::GET, "/v1/queues/dlq/stats", Some(&app), None)
            .await?;
        if stats["ready"] == 1 {
            in_dlq = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(in_dlq, "the dead letter should reach the DLQ");

    let redriven = sluice
        .data
        .post_ok(&app, "/v1/queues/dlq/redrive", json!({"max_messages": 10}))
        .await?;
    assert_eq!(redriven["redriven"], 1, "{redriven}");
    let back = sluice
        .data
        .post_ok(&app, "/v1/queues/orders/receive", json!({"wait_ms": 2000}))
        .await?;
    assert_eq!(back["messages"][0]["body"], "order 1001", "{back}");
    assert_eq!(back["messages"][0]["message_id"], "order-1001");

    // A publisher retrying the same id is still deduplicated.
    let retried = sluice
        .data
        .post_ok(&app, "/v1/queues/orders/messages", message)
        .await?;
    assert_eq!(retried["results"][0]["status"], "duplicate", "{retried}");
    Ok(())
}

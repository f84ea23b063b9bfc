//! Message priority through the public API: higher priorities are received
//! first and FIFO holds within a priority, for pull and push consumers; an
//! out-of-range priority names the field.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sluice_e2e::{Deployment, PushConsumer};

#[tokio::test(flavor = "multi_thread")]
async fn higher_priority_first_fifo_within_a_priority() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    for queue in ["tasks", "pushed"] {
        sluice
            .declare(&sluice.admin, &format!("/v1/queues/{queue}"), json!({}))
            .await?;
        let messages = vec![
            json!({"body": "low-1"}),
            json!({"body": "urgent-1", "priority": 9}),
            json!({"body": "normal-1", "priority": 4}),
            json!({"body": "urgent-2", "priority": 9}),
            json!({"body": "low-2", "priority": 0}),
        ];
        sluice.publish_to_queue(&app, queue, messages).await?;
    }
    let expected = ["urgent-1", "urgent-2", "normal-1", "low-1", "low-2"];

    let received = sluice.receive(&app, "tasks", 10, 0).await?;
    let bodies: Vec<&str> = received.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, expected);
    assert_eq!(received[0]["priority"], 9);

    let mut consumer = PushConsumer::connect(&sluice.data, &app, "pushed", "prefetch=1").await?;
    let mut pushed = Vec::new();
    while pushed.len() < expected.len() {
        let Some(message) = consumer.next_message(Duration::from_secs(10)).await? else {
            anyhow::bail!("push consumer got only {pushed:?}");
        };
        pushed.push(message["body"].as_str().unwrap_or_default().to_string());
        sluice.ack(&app, "pushed", &message).await?;
    }
    assert_eq!(pushed, expected);

    let (status, problem) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/tasks/messages",
            Some(&app),
            Some(json!({"messages": [{"body": "x", "priority": 256}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "messages[0].priority", "{problem}");
    Ok(())
}

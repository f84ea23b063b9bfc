//! One tenant cannot hold unbounded long-polls and push streams open on a
//! broker: beyond `max_waiting_per_tenant` a new one is 429 `rate-limited`
//! with a retry time, while its open ones and another tenant's go on, and
//! one closing makes room again.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_e2e::Deployment;

const CAP: [(&str, &str); 1] = [("SLUICE_BROKER_MAX_WAITING_PER_TENANT", "2")];

/// A raw long-poll receive; answers its status and body.
async fn receive(broker: &str, key: &str, queue: &str, wait_ms: u64) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{broker}/v1/queues/{queue}/receive"))
        .bearer_auth(key)
        .json(&json!({"wait_ms": wait_ms}))
        .send()
        .await
        .expect("receive sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_at_its_cap_of_open_long_polls_gets_429_and_others_do_not() -> anyhow::Result<()> {
    let sluice = Deployment::start_with_broker_env(&CAP).await?;
    let broker = sluice.broker.url.clone();
    sluice
        .declare(&sluice.admin, "/v1/queues/q", json!({}))
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    let other_admin = sluice.tenant(&sluice.operator, "other").await?;
    sluice
        .declare(&other_admin, "/v1/queues/q", json!({}))
        .await?;
    let other = sluice.key(&other_admin, &["consume"]).await?;

    // Two long-polls wait on the empty queue: the cap.
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let (broker, app) = (broker.clone(), app.clone());
            tokio::spawn(async move { receive(&broker, &app, "q", 4_000).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A third is refused at once, with a retry time; so is a push stream.
    let (status, problem) = receive(&broker, &app, "q", 4_000).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("rate-limited"),
        "{problem}"
    );
    let push = reqwest::Client::new()
        .get(format!("{broker}/v1/queues/q/consume"))
        .bearer_auth(&app)
        .send()
        .await?;
    assert_eq!(push.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(push.headers().contains_key("retry-after"));
    // A receive that does not wait holds nothing open: not capped.
    let (status, body) = receive(&broker, &app, "q", 0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another tenant has a cap of its own.
    let (status, body) = receive(&broker, &other, "q", 100).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A message ends one wait; then there is room again.
    sluice
        .publish_to_queue(&app, "q", vec![json!({"body": "hello"})])
        .await?;
    let mut answered = 0;
    for task in waiting {
        let (status, body) = task.await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        answered += body["messages"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(
        answered, 1,
        "the message went to one of the waiting receives"
    );
    let (status, body) = receive(&broker, &app, "q", 100).await;
    assert_eq!(status, StatusCode::OK, "room again once they ended: {body}");
    Ok(())
}

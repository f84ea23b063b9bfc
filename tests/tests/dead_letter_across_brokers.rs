//! Dead letters and redrives cross brokers: with two brokers, a queue on
//! one dead-letters into a DLQ on the other (the broker hosting the source
//! republishes to the broker hosting the target with the node key, as no
//! client credential exists for a dead letter), and a redrive from that DLQ
//! goes back across to the source queue, priority and headers intact.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Broker, Deployment, eventually};

/// The queues `broker` hosts (awake or asleep: a queue is opened on first use).
async fn hosts(broker: &Broker) -> anyhow::Result<Vec<String>> {
    Ok(broker
        .queue_series("sluice_queue_awake")
        .await?
        .into_keys()
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_and_its_redrive_cross_to_the_other_broker() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let second = sluice.another_broker("n2")?;
    let via_n2 = Api::new(&second.url);
    let admin = &sluice.admin;
    // Least loaded placement: the DLQ lands on n1, `orders` on n2.
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
            json!({"dead_letter_exchange": "dlx"}),
        )
        .await?;
    sluice.bind("dlx", "orders-dlq", "").await?;
    assert_eq!(
        (hosts(&sluice.broker).await?, hosts(&second).await?),
        (vec!["orders-dlq".to_string()], vec!["orders".to_string()])
    );
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    // Through n1 (forwarded to n2, which hosts `orders`): publish, receive, reject.
    sluice
        .publish_to_queue(
            &app,
            "orders",
            vec![json!({"body": "order 7", "priority": 3, "headers": {"k": "v"}})],
        )
        .await?;
    let messages = sluice.receive(&app, "orders", 1, 5000).await?;
    let message = messages.first().expect("the message is delivered");
    let answer = sluice.nack(&app, "orders", message, "dead_letter").await?;
    assert_eq!(answer["outcome"], "dead_lettered", "{answer}");

    // n2 republishes it into the DLQ on n1.
    let arrived = eventually(Duration::from_secs(10), || async {
        matches!(sluice.stats(&app, "orders-dlq").await, Ok(s) if s["ready"] == 1)
    })
    .await;
    assert!(arrived, "the dead letter crossed to the DLQ's broker");
    let (_, peeked) = via_n2
        .call(Method::GET, "/v1/queues/orders-dlq/peek", Some(&app), None)
        .await?;
    let dead = &peeked["messages"][0];
    assert_eq!(dead["body"], "order 7", "{peeked}");
    assert_eq!(dead["priority"], 3, "{dead}");
    assert_eq!(dead["headers"]["k"], "v", "{dead}");
    assert_eq!(dead["headers"]["x-death-reason"], "rejected", "{dead}");
    assert_eq!(dead["headers"]["x-death-queue"], "orders", "{dead}");
    let (_, stats) = via_n2
        .call(Method::GET, "/v1/queues/orders/stats", Some(&app), None)
        .await?;
    assert_eq!(
        (stats["ready"].clone(), stats["unacked"].clone()),
        (json!(0), json!(0))
    );

    // The redrive (served by n1, which hosts the DLQ) goes back across to n2.
    let (status, redriven) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/orders-dlq/redrive",
            Some(&app),
            Some(json!({"max_messages": 10})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{redriven}");
    assert_eq!(redriven["redriven"], 1, "{redriven}");
    assert_eq!(
        redriven["messages"][0]["queues"],
        json!(["orders"]),
        "{redriven}"
    );
    let back: Vec<Value> = sluice.receive(&app, "orders", 1, 5000).await?;
    assert_eq!(
        back.first().map(|m| m["body"].clone()),
        Some(json!("order 7"))
    );
    assert_eq!(back[0]["priority"], 3, "{back:?}");

    // Only brokers (the node key) may republish into a queue.
    for api in [&sluice.data, &via_n2] {
        let (status, problem) = api
            .call(
                Method::POST,
                "/internal/v1/tenants/1/queues/orders/republish",
                Some(&app),
                Some(json!({"message": {}, "body": "", "body_encoding": "utf8"})),
            )
            .await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    }
    Ok(())
}

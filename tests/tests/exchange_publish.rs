//! Publishing through exchanges on a real broker: a direct and a topic
//! exchange route to their bound queues, each message reports how many
//! queues took it, and an unroutable message says so; a message nacked to
//! dead-letter reaches the queue bound to its dead-letter exchange.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::Deployment;

fn message(body: &str, routing_key: &str) -> Value {
    json!({"body": body, "routing_key": routing_key})
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_and_topic_exchanges_route_to_bound_queues() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    for queue in ["eu", "us", "audit"] {
        sluice
            .declare(admin, &format!("/v1/queues/{queue}"), json!({}))
            .await?;
    }
    sluice
        .declare(admin, "/v1/exchanges/regions", json!({"type": "direct"}))
        .await?;
    sluice
        .declare(admin, "/v1/exchanges/events", json!({"type": "topic"}))
        .await?;
    sluice.bind("regions", "eu", "eu").await?;
    sluice.bind("regions", "us", "us").await?;
    sluice.bind("events", "eu", "orders.eu.*").await?;
    sluice.bind("events", "audit", "orders.#").await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    let (status, direct) = sluice
        .data
        .call(
            Method::POST,
            "/v1/exchanges/regions/publish",
            Some(&app),
            Some(json!({"messages": [
                message("to eu", "eu"),
                message("to us", "us"),
                message("to nowhere", "asia"),
            ], "mandatory": true})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{direct}");
    let results = &direct["results"];
    assert_eq!(results[0]["routed"], 1, "{direct}");
    assert_eq!(results[0]["queues"], json!(["eu"]));
    assert_eq!(results[1]["queues"], json!(["us"]));
    assert_eq!(results[2]["unroutable"], true);
    assert_eq!(results[2]["routed"], 0);
    assert_eq!(results[2]["returned"], true);

    let (status, topic) = sluice
        .data
        .call(
            Method::POST,
            "/v1/exchanges/events/publish",
            Some(&app),
            Some(json!({"messages": [
                message("eu order", "orders.eu.created"),
                message("us order", "orders.us.created"),
                message("a refund", "refunds.eu.created"),
            ]})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{topic}");
    let results = &topic["results"];
    assert_eq!(results[0]["routed"], 2, "{topic}");
    assert_eq!(results[0]["queues"], json!(["audit", "eu"]));
    assert_eq!(results[1]["routed"], 1);
    assert_eq!(results[2]["status"], "unroutable");

    // The default exchange routes by queue name.
    let (_, by_name) = sluice
        .data
        .call(
            Method::POST,
            "/v1/exchanges/default/publish",
            Some(&app),
            Some(json!({"messages": [message("named", "us")]})),
        )
        .await?;
    assert_eq!(by_name["results"][0]["queues"], json!(["us"]), "{by_name}");

    assert_eq!(sluice.bodies(&app, "eu").await?, ["eu order", "to eu"]);
    assert_eq!(sluice.bodies(&app, "us").await?, ["named", "to us"]);
    assert_eq!(
        sluice.bodies(&app, "audit").await?,
        ["eu order", "us order"]
    );

    let (status, missing) = sluice
        .data
        .call(
            Method::POST,
            "/v1/exchanges/nope/publish",
            Some(&app),
            Some(json!({"messages": [message("x", "y")]})),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    // Dead-lettering: nack with dead_letter → republished through the DLX.
    sluice
        .declare(admin, "/v1/exchanges/dlx", json!({"type": "fanout"}))
        .await?;
    sluice
        .declare(admin, "/v1/queues/graveyard", json!({}))
        .await?;
    sluice
        .declare(
            admin,
            "/v1/queues/work",
            json!({"dead_letter_exchange": "dlx"}),
        )
        .await?;
    sluice.bind("dlx", "graveyard", "").await?;
    sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/work/messages",
            Some(&app),
            Some(json!({"messages": [{"body": "poison", "headers": {"origin": "test"}}]})),
        )
        .await?;
    let (_, received) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/work/receive",
            Some(&app),
            Some(json!({})),
        )
        .await?;
    let receipt = received["messages"][0]["receipt"].clone();
    let (status, nacked) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/work/nack",
            Some(&app),
            Some(json!({"receipt": receipt, "action": "dead_letter"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{nacked}");
    assert_eq!(nacked["outcome"], "dead_lettered");
    let (_, dead) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/graveyard/receive",
            Some(&app),
            Some(json!({"wait_ms": 5000})),
        )
        .await?;
    let dead = &dead["messages"][0];
    assert_eq!(dead["body"], "poison", "{dead}");
    assert_eq!(dead["headers"]["origin"], "test");
    assert_eq!(dead["headers"]["x-death-reason"], "rejected");
    assert_eq!(dead["headers"]["x-death-queue"], "work");
    assert_eq!(dead["headers"]["x-death-count"], "1");
    // Settled: the source queue's outbox is empty again.
    let settled = sluice_e2e::eventually(std::time::Duration::from_secs(5), || async {
        let stats = sluice
            .data
            .call(Method::GET, "/v1/queues/work/stats", Some(&app), None)
            .await;
        matches!(stats, Ok((_, s)) if s["outbox"] == 0)
    })
    .await;
    assert!(settled, "the dead letter should be settled");
    Ok(())
}

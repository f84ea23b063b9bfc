//! What only the broker knows, seen through the control plane: a queue's
//! live depth on `GET /v1/queues/{q}`, and deletes with `if_empty` /
//! `if_unused` refused while the broker holds messages or consumers — and
//! refused with 503, not guessed, while that broker is down.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sluice_e2e::Deployment;

#[tokio::test(flavor = "multi_thread")]
async fn depth_and_conditional_deletes_follow_the_broker() -> anyhow::Result<()> {
    let mut sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(&sluice.admin, "/v1/queues/jobs", json!({}))
        .await?;

    let (_, fresh) = sluice
        .api
        .call(Method::GET, "/v1/queues/jobs", Some(&sluice.admin), None)
        .await?;
    assert_eq!(fresh["stats"]["ready"], 0, "{fresh}");

    let messages = json!({"messages": [{"body": "a"}, {"body": "b"}]});
    let (status, _) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/jobs/messages",
            Some(&app),
            Some(messages),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (_, read) = sluice
        .api
        .call(Method::GET, "/v1/queues/jobs", Some(&sluice.admin), None)
        .await?;
    assert_eq!(
        (
            read["stats"]["ready"].as_u64(),
            read["stats"]["unacked"].as_u64()
        ),
        (Some(2), Some(0)),
        "{read}"
    );

    let (status, refused) = sluice
        .api
        .call(
            Method::DELETE,
            "/v1/queues/jobs?if_empty=true",
            Some(&sluice.admin),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["type"], "https://sluice.dev/problems/in-use");

    // One leased message: not empty, and a consumer holds it.
    let (_, received) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/jobs/receive",
            Some(&app),
            Some(json!({"max_messages": 2})),
        )
        .await?;
    let receipts: Vec<_> = received["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["receipt"].clone())
        .collect();
    assert_eq!(receipts.len(), 2, "{received}");
    let (status, _) = sluice
        .api
        .call(
            Method::DELETE,
            "/v1/queues/jobs?if_unused=true",
            Some(&sluice.admin),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, read) = sluice
        .api
        .call(Method::GET, "/v1/queues/jobs", Some(&sluice.admin), None)
        .await?;
    assert_eq!(read["stats"]["unacked"].as_u64(), Some(2), "{read}");
    sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/jobs/ack",
            Some(&app),
            Some(json!({"receipts": receipts})),
        )
        .await?;

    // The broker counted the deliveries and acks.
    let metrics = reqwest::get(&sluice.broker.metrics_url)
        .await?
        .text()
        .await?;
    for name in [
        "sluice_delivered_messages_total{",
        "sluice_acked_messages_total{",
    ] {
        let value = metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains("queue=\"jobs\""))
            .and_then(|l| l.rsplit(' ').next());
        assert_eq!(value, Some("2"), "{name} in {metrics}");
    }

    // With the broker down the condition cannot be checked: 503, and the queue stays.
    sluice.broker.process.stop()?;
    let (status, body) = sluice
        .api
        .call(
            Method::DELETE,
            "/v1/queues/jobs?if_empty=true",
            Some(&sluice.admin),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    sluice.restart_broker()?;

    // Empty and unused now: the conditional delete goes through.
    let (status, deleted) = sluice
        .api
        .call(
            Method::DELETE,
            "/v1/queues/jobs?if_empty=true&if_unused=true",
            Some(&sluice.admin),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let (status, _) = sluice
        .api
        .call(Method::GET, "/v1/queues/jobs", Some(&sluice.admin), None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}

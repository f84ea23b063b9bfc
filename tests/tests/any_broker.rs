//! Any broker serves any queue of the tenant: with two brokers, queues are
//! placed on both, and publishing, receiving and acking work through either
//! one — the broker that does not host a queue forwards to the one that does,
//! and an exchange publish fans out to queues on both.

use reqwest::Method;
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment};

#[tokio::test(flavor = "multi_thread")]
async fn either_broker_publishes_and_consumes_every_queue() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let second = sluice.another_broker("n2")?;
    let via_n1 = &sluice.data;
    let via_n2 = Api::new(&second.url);
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;

    // Least loaded placement: the first queue lands on n1, the second on n2.
    sluice
        .declare(&sluice.admin, "/v1/queues/on-n1", json!({}))
        .await?;
    sluice
        .declare(&sluice.admin, "/v1/queues/on-n2", json!({}))
        .await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/exchanges/both",
            json!({"type": "fanout"}),
        )
        .await?;
    for queue in ["on-n1", "on-n2"] {
        sluice.bind("both", queue, "").await?;
    }

    // Each broker publishes to both queues, directly and through the exchange.
    for (api, label) in [(via_n1, "n1"), (&via_n2, "n2")] {
        for queue in ["on-n1", "on-n2"] {
            let body = json!({"messages": [{"body": format!("{label}->{queue}")}]});
            let answer = api
                .post_ok(&app, &format!("/v1/queues/{queue}/messages"), body)
                .await?;
            assert_eq!(answer["results"][0]["status"], "stored", "{answer}");
        }
        let body = json!({"messages": [{"body": format!("{label}->both")}]});
        let answer = api
            .post_ok(&app, "/v1/exchanges/both/publish", body)
            .await?;
        assert_eq!(answer["results"][0]["routed"], 2, "{answer}");
    }

    // Each queue is drained through the broker that does not host it.
    for (api, queue) in [(&via_n2, "on-n1"), (via_n1, "on-n2")] {
        let received = api
            .post_ok(
                &app,
                &format!("/v1/queues/{queue}/receive"),
                json!({"max_messages": 10, "wait_ms": 2000}),
            )
            .await?;
        let mut bodies: Vec<String> = received["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["body"].as_str().map(str::to_string))
            .collect();
        bodies.sort();
        let mut expected = vec![
            format!("n1->{queue}"),
            format!("n2->{queue}"),
            "n1->both".to_string(),
            "n2->both".to_string(),
        ];
        expected.sort();
        assert_eq!(bodies, expected, "{received}");
        let receipts: Vec<Value> = received["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["receipt"].clone())
            .collect();
        let acked = api
            .post_ok(
                &app,
                &format!("/v1/queues/{queue}/ack"),
                json!({"receipts": receipts}),
            )
            .await?;
        assert!(
            acked["results"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|r| r["status"] == "ok"),
            "{acked}"
        );
        let (_, stats) = api
            .call(
                Method::GET,
                &format!("/v1/queues/{queue}/stats"),
                Some(&app),
                None,
            )
            .await?;
        assert_eq!(
            (stats["ready"].as_u64(), stats["unacked"].as_u64()),
            (Some(0), Some(0)),
            "{stats}"
        );
    }
    drop(second);
    Ok(())
}

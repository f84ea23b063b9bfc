//! The seed notes' exchange patterns end to end: fanout to every bound
//! queue; direct routing by severity with one queue bound to several keys;
//! topic routing (`usa.news` reaches both `usa.#` and `#.news`); and a
//! consistent-hash exchange that keeps every event of one order id on one
//! queue.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sluice_e2e::Deployment;

fn message(body: &str, routing_key: &str) -> Value {
    json!({"body": body, "routing_key": routing_key})
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_direct_topic_and_consistent_hash_route_as_in_rabbitmq() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    let queues = [
        "log-a", "log-b", "errors", "all-logs", "usa", "news", "shard-0", "shard-1", "shard-2",
    ];
    for queue in queues {
        sluice
            .declare(admin, &format!("/v1/queues/{queue}"), json!({}))
            .await?;
    }
    for (exchange, kind) in [
        ("logs", "fanout"),
        ("severity", "direct"),
        ("topics", "topic"),
        ("orders", "consistent-hash"),
    ] {
        sluice
            .declare(
                admin,
                &format!("/v1/exchanges/{exchange}"),
                json!({ "type": kind }),
            )
            .await?;
    }
    sluice.bind("logs", "log-a", "").await?;
    sluice.bind("logs", "log-b", "").await?;
    sluice.bind("severity", "errors", "error").await?;
    for severity in ["error", "warning", "info"] {
        sluice.bind("severity", "all-logs", severity).await?;
    }
    sluice.bind("topics", "usa", "usa.#").await?;
    sluice.bind("topics", "news", "#.news").await?;
    for shard in ["shard-0", "shard-1", "shard-2"] {
        sluice.bind("orders", shard, "1").await?;
    }
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    // Fanout: every bound queue gets a copy, whatever the routing key.
    let results = sluice
        .publish(&app, "logs", vec![message("boot", "ignored")])
        .await?;
    assert_eq!(results[0]["routed"], 2, "{results:?}");
    assert_eq!(sluice.bodies(&app, "log-a").await?, ["boot"]);
    assert_eq!(sluice.bodies(&app, "log-b").await?, ["boot"]);

    // Direct: errors go to both, info only to the queue bound to every severity.
    let results = sluice
        .publish(
            &app,
            "severity",
            vec![message("disk full", "error"), message("started", "info")],
        )
        .await?;
    assert_eq!(results[0]["queues"], json!(["all-logs", "errors"]));
    assert_eq!(results[1]["queues"], json!(["all-logs"]));
    assert_eq!(sluice.bodies(&app, "errors").await?, ["disk full"]);
    assert_eq!(
        sluice.bodies(&app, "all-logs").await?,
        ["disk full", "started"]
    );

    // Topic: `*`/`#` wildcards.
    let results = sluice
        .publish(
            &app,
            "topics",
            vec![
                message("usa news", "usa.news"),
                message("usa weather", "usa.weather"),
                message("europe news", "europe.news"),
            ],
        )
        .await?;
    assert_eq!(results[0]["queues"], json!(["news", "usa"]), "{results:?}");
    assert_eq!(
        sluice.bodies(&app, "usa").await?,
        ["usa news", "usa weather"]
    );
    assert_eq!(
        sluice.bodies(&app, "news").await?,
        ["europe news", "usa news"]
    );

    // Consistent hash: every event of one order lands on one queue.
    let mut events = Vec::new();
    for step in ["created", "paid", "shipped"] {
        for order in 0..20 {
            events.push(message(
                &format!("order-{order}:{step}"),
                &format!("order-{order}"),
            ));
        }
    }
    let results = sluice.publish(&app, "orders", events).await?;
    assert!(results.iter().all(|r| r["routed"] == 1), "{results:?}");
    let mut shards_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut used = BTreeSet::new();
    for shard in ["shard-0", "shard-1", "shard-2"] {
        for message in sluice.drain(&app, shard).await? {
            let order = message["routing_key"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            shards_of
                .entry(order)
                .or_default()
                .insert(shard.to_string());
            used.insert(shard);
        }
    }
    assert_eq!(shards_of.len(), 20, "every order arrived");
    for (order, shards) in &shards_of {
        assert_eq!(shards.len(), 1, "{order} spread over {shards:?}");
    }
    assert!(used.len() >= 2, "the ring spreads orders: {used:?}");
    Ok(())
}

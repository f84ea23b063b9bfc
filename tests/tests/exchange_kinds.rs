//! The exchange kinds the seed notes do not walk through, end to end: a
//! headers exchange (`all` and `any`, a numeric binding value matching the
//! header text a publisher sends), exchange-to-exchange bindings into an
//! internal exchange (which refuses direct publishes), and an alternate
//! exchange that catches what no binding matched (so `mandatory` has nothing
//! to return); a consistent-hash exchange hashing a header over weighted
//! bindings keeps each order on one queue, and a message without the header
//! is unroutable.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::Deployment;

#[tokio::test(flavor = "multi_thread")]
async fn headers_exchange_to_exchange_and_alternate_exchange() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    for queue in ["pdf-reports", "pdf-or-v2", "audit", "lost"] {
        sluice
            .declare(admin, &format!("/v1/queues/{queue}"), json!({}))
            .await?;
    }
    sluice
        .declare(admin, "/v1/exchanges/unrouted", json!({"type": "fanout"}))
        .await?;
    sluice
        .declare(
            admin,
            "/v1/exchanges/documents",
            json!({"type": "headers", "internal": true, "alternate_exchange": "unrouted"}),
        )
        .await?;
    sluice
        .declare(admin, "/v1/exchanges/ingress", json!({"type": "topic"}))
        .await?;
    sluice
        .bind_spec(json!({"source": "documents", "destination": "pdf-reports",
               "headers": {"format": "pdf", "type": "report"}}))
        .await?;
    sluice
        .bind_spec(
            json!({"source": "documents", "destination": "pdf-or-v2", "match": "any",
               "headers": {"format": "pdf", "version": 2}}),
        )
        .await?;
    sluice
        .bind_spec(json!({"source": "ingress", "destination_type": "exchange",
               "destination": "documents", "routing_key": "docs.#"}))
        .await?;
    sluice
        .bind_spec(json!({"source": "ingress", "destination": "audit", "routing_key": "#"}))
        .await?;
    sluice
        .bind_spec(json!({"source": "unrouted", "destination": "lost"}))
        .await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    let doc = |body: &str, headers: Value| json!({"body": body, "routing_key": "docs.new", "headers": headers});
    let (status, answer) = sluice
        .data
        .call(
            Method::POST,
            "/v1/exchanges/ingress/publish",
            Some(&app),
            Some(json!({"mandatory": true, "messages": [
                doc("pdf report", json!({"format": "pdf", "type": "report"})),
                doc("pdf invoice", json!({"format": "pdf", "type": "invoice"})),
                doc("v2 zip", json!({"format": "zip", "version": "2"})),
                doc("v3 zip", json!({"format": "zip", "version": "3"})),
                json!({"body": "not a document", "routing_key": "mail.new"}),
            ]})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let results = &answer["results"];
    assert_eq!(
        results[0]["queues"],
        json!(["audit", "pdf-or-v2", "pdf-reports"]),
        "{answer}"
    );
    assert_eq!(
        results[1]["queues"],
        json!(["audit", "pdf-or-v2"]),
        "{answer}"
    );
    assert_eq!(
        results[2]["queues"],
        json!(["audit", "pdf-or-v2"]),
        "{answer}"
    );
    // Matched nothing in `documents`: its alternate exchange took it, so it is
    // routed and `mandatory` returns nothing.
    assert_eq!(results[3]["queues"], json!(["audit", "lost"]), "{answer}");
    assert!(results[3].get("returned").is_none(), "{answer}");
    assert_eq!(results[4]["queues"], json!(["audit"]), "{answer}");

    assert_eq!(sluice.bodies(&app, "pdf-reports").await?, ["pdf report"]);
    assert_eq!(
        sluice.bodies(&app, "pdf-or-v2").await?,
        ["pdf invoice", "pdf report", "v2 zip"]
    );
    assert_eq!(sluice.bodies(&app, "lost").await?, ["v3 zip"]);
    assert_eq!(sluice.bodies(&app, "audit").await?.len(), 5);

    // The internal exchange takes messages only from other exchanges.
    let (status, problem) = sluice
        .data
        .call(
            Method::POST,
            "/v1/exchanges/documents/publish",
            Some(&app),
            Some(json!({"messages": [doc("direct", json!({"format": "pdf"}))]})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(
        sluice.bodies(&app, "pdf-or-v2").await?,
        Vec::<String>::new()
    );

    // Consistent hash on the `order` header, one shard weighted double.
    sluice
        .declare(
            admin,
            "/v1/exchanges/orders",
            json!({"type": "consistent-hash", "hash_header": "order"}),
        )
        .await?;
    for (shard, weight) in [("shard-a", 1), ("shard-b", 1), ("shard-c", 2)] {
        sluice
            .declare(admin, &format!("/v1/queues/{shard}"), json!({}))
            .await?;
        sluice
            .bind_spec(json!({"source": "orders", "destination": shard, "weight": weight}))
            .await?;
    }
    let mut events: Vec<Value> = Vec::new();
    for step in ["created", "paid", "shipped"] {
        for order in 0..20 {
            events.push(
                json!({"body": format!("{order} {step}"), "routing_key": "ignored",
                               "headers": {"order": format!("o-{order}")}}),
            );
        }
    }
    events.push(json!({"body": "no order", "routing_key": "ignored"}));
    let results = sluice.publish(&app, "orders", events).await?;
    let mut shard_of: std::collections::BTreeMap<String, Value> = Default::default();
    for (i, result) in results.iter().take(60).enumerate() {
        assert_eq!(result["routed"], 1, "{result}");
        let order = format!("o-{}", i % 20);
        let first = shard_of
            .entry(order.clone())
            .or_insert(result["queues"].clone());
        assert_eq!(*first, result["queues"], "{order} moved between shards");
    }
    let used: std::collections::BTreeSet<String> =
        shard_of.values().map(Value::to_string).collect();
    assert!(used.len() >= 2, "20 orders all on one shard: {used:?}");
    assert_eq!(results[60]["status"], "unroutable", "{}", results[60]);
    Ok(())
}

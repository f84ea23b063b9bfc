//! What an exchange publish tells the publisher per target queue: a fanout
//! to a dedup queue and a plain queue reports which queue kept the first
//! copy of a re-published id, a full `reject-publish` queue is reported as
//! failed with its reason while the other queue still stores the message,
//! and oversized or malformed metadata is refused before anything is written.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::Deployment;

#[tokio::test(flavor = "multi_thread")]
async fn fanout_reports_duplicates_rejections_and_bad_metadata() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/exchanges/orders", json!({"type": "fanout"}))
        .await?;
    sluice
        .declare(
            admin,
            "/v1/queues/billing",
            json!({"dedup_window_ms": 60000}),
        )
        .await?;
    sluice
        .declare(
            admin,
            "/v1/queues/shipping",
            json!({"max_length": 1, "overflow": "reject-publish"}),
        )
        .await?;
    sluice.bind("orders", "billing", "").await?;
    sluice.bind("orders", "shipping", "").await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    let first = sluice
        .publish(
            &app,
            "orders",
            vec![json!({"body": "order 1", "message_id": "o-1"})],
        )
        .await?;
    assert_eq!(first[0]["routed"], 2, "{first:?}");
    assert!(first[0].get("duplicate").is_none(), "{first:?}");

    // The retry: billing deduplicates it, shipping is full and refuses it.
    let retry = sluice
        .publish(
            &app,
            "orders",
            vec![json!({"body": "order 1", "message_id": "o-1"})],
        )
        .await?;
    let outcome = &retry[0];
    assert_eq!(outcome["queues"], json!(["billing"]), "{outcome}");
    assert_eq!(outcome["duplicate"], json!(["billing"]), "{outcome}");
    assert_eq!(outcome["failed"][0]["queue"], "shipping", "{outcome}");
    assert_eq!(outcome["failed"][0]["error"], "rejected", "{outcome}");
    assert_eq!(outcome["failed"][0]["reason"], "max-length", "{outcome}");

    // Nothing was stored twice, nothing was dropped silently.
    assert_eq!(sluice.stats(&app, "billing").await?["ready"], 1);
    assert_eq!(sluice.stats(&app, "shipping").await?["ready"], 1);

    for (field, message) in bad_metadata() {
        let (status, problem) = sluice
            .data
            .call(
                Method::POST,
                "/v1/exchanges/orders/publish",
                Some(&app),
                Some(json!({"messages": [{"body": "ok"}, message]})),
            )
            .await?;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {problem}"
        );
        assert_eq!(problem["field"], field, "{problem}");
    }
    // A header block that pushes the message past the tenant's size limit
    // (256 KiB on the free plan) is refused as too large, not stored.
    let (status, problem) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/billing/messages",
            Some(&app),
            Some(json!({"messages": [{"body": "x", "headers": {"big": "h".repeat(300 << 10)}}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert_eq!(sluice.stats(&app, "billing").await?["ready"], 1);
    Ok(())
}

/// Each malformed message (as the second of a batch) and the field its
/// problem must name.
fn bad_metadata() -> Vec<(&'static str, Value)> {
    let many_headers: serde_json::Map<String, Value> = (0..65)
        .map(|i| (format!("h{i}"), Value::from("v")))
        .collect();
    vec![
        (
            "messages[1].routing_key",
            json!({"body": "x", "routing_key": "r".repeat(256)}),
        ),
        (
            "messages[1].message_id",
            json!({"body": "x", "message_id": ""}),
        ),
        (
            "messages[1].group",
            json!({"body": "x", "group": "g".repeat(257)}),
        ),
        (
            "messages[1].content_type",
            json!({"body": "x", "content_type": ""}),
        ),
        (
            "messages[1].headers",
            json!({"body": "x", "headers": many_headers}),
        ),
        (
            "messages[1].delay_ms",
            json!({"body": "x", "delay_ms": 5_000_000_000u64}),
        ),
        (
            "messages[1].expiration_ms",
            json!({"body": "x", "expiration_ms": 5_000_000_000u64}),
        ),
    ]
}

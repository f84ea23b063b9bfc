//! The tenant storage quota (`max_storage_bytes`) against real processes:
//! brokers report what each tenant stores (live queue messages, stream
//! partition logs) with their heartbeats, the control plane sums it, and
//! once a tenant's sum reaches its quota publishes and produces are refused
//! with 403 `quota-exceeded` (quota, limit, used) until consuming frees
//! room; another tenant is not affected.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Deployment, eventually};

const LIMIT: u64 = 20_000;

/// Publishes 2 KB messages until one is refused; the refusal.
async fn fill(sluice: &Deployment, key: &str) -> anyhow::Result<Value> {
    let body = "x".repeat(2_000);
    for _ in 0..200 {
        let (status, answer) = sluice
            .data
            .call(
                Method::POST,
                "/v1/queues/jobs/messages",
                Some(key),
                Some(json!({"messages": [{"body": body}]})),
            )
            .await?;
        if status == StatusCode::FORBIDDEN {
            return Ok(answer);
        }
        anyhow::ensure!(status == StatusCode::OK, "publish: {status} {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("200 publishes of 2 KB never hit a {LIMIT}-byte quota")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_tenant_is_refused_until_consuming_frees_room() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    sluice
        .set_quotas(json!({"max_storage_bytes": LIMIT}))
        .await?;
    sluice
        .declare(&sluice.admin, "/v1/queues/jobs", json!({}))
        .await?;
    sluice
        .declare(&sluice.admin, "/v1/streams/events", json!({}))
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;

    let problem = fill(&sluice, &app).await?;
    assert_eq!(
        problem["type"], "https://sluice.dev/problems/quota-exceeded",
        "{problem}"
    );
    assert_eq!(problem["quota"], "max_storage_bytes", "{problem}");
    assert_eq!(problem["limit"], LIMIT, "{problem}");
    let used = problem["used"].as_u64().unwrap_or(0);
    // Soft by a heartbeat: a few messages may pass before the sum catches up.
    assert!(used + 2_000 > LIMIT && used < 2 * LIMIT, "{problem}");
    let stats = sluice.stats(&app, "jobs").await?;
    let stored = stats["ready"].as_u64().unwrap_or(0);
    assert!(
        stored >= 9,
        "about {LIMIT} bytes were admitted first: {stats}"
    );

    // Streams count too: a produce is refused the same way.
    let (status, refused) = sluice
        .data
        .call(
            Method::POST,
            "/v1/streams/events/records",
            Some(&app),
            Some(json!({"records": [{"value": "one more"}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["quota"], "max_storage_bytes", "{refused}");

    // The control plane shows the tenant's storage next to its quota.
    let (_, tenant) = sluice
        .api
        .call(
            Method::GET,
            "/v1/tenants/acme/quotas",
            Some(&sluice.operator),
            None,
        )
        .await?;
    let shown = tenant["usage"]["storage_bytes"].as_u64().unwrap_or(0);
    assert!(shown >= LIMIT - 2_000, "{tenant}");

    // Another tenant has room.
    let other = sluice.tenant(&sluice.operator, "globex").await?;
    sluice.declare(&other, "/v1/queues/jobs", json!({})).await?;
    let other_app = sluice.key(&other, &["publish"]).await?;
    let (status, answer) = sluice
        .data
        .call(
            Method::POST,
            "/v1/queues/jobs/messages",
            Some(&other_app),
            Some(json!({"messages": [{"body": "fine"}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Consuming frees room: publishing works again after the next heartbeat.
    let received = sluice.receive(&app, "jobs", 100, 0).await?;
    let receipts: Vec<Value> = received.iter().map(|m| m["receipt"].clone()).collect();
    sluice
        .data
        .post_ok(&app, "/v1/queues/jobs/ack", json!({"receipts": receipts}))
        .await?;
    let room_again = eventually(Duration::from_secs(10), || async {
        matches!(
            sluice
                .data
                .call(
                    Method::POST,
                    "/v1/queues/jobs/messages",
                    Some(&app),
                    Some(json!({"messages": [{"body": "again"}]})),
                )
                .await,
            Ok((StatusCode::OK, _))
        )
    })
    .await;
    assert!(room_again, "acking everything did not free the quota");
    Ok(())
}

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

/// The tenant's stored bytes as the control plane shows them.
async fn storage_used(sluice: &Deployment) -> anyhow::Result<u64> {
    let (status, tenant) = sluice
        .api
        .call(
            Method::GET,
            "/v1/tenants/acme/quotas",
            Some(&sluice.operator),
            None,
        )
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "{status} {tenant}");
    Ok(tenant["usage"]["storage_bytes"].as_u64().unwrap_or(0))
}

/// Polls the tenant's stored bytes until `done` holds (10 s at most).
async fn storage_used_until(
    sluice: &Deployment,
    done: impl Fn(u64) -> bool,
) -> anyhow::Result<u64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let used = storage_used(sluice).await?;
        if done(used) {
            return Ok(used);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "stored bytes stuck at {used}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Partition 0 logs every consumer-group heartbeat; that bookkeeping is not
/// the tenant's data and must not fill its quota.
#[tokio::test(flavor = "multi_thread")]
async fn group_heartbeats_do_not_count_as_stored_bytes() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let (status, body) = sluice
        .api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/quotas",
            Some(&sluice.operator),
            Some(json!({"max_storage_bytes": LIMIT})),
        )
        .await?;
    assert!(status.is_success(), "{body}");
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/events",
            json!({"partitions": 1}),
        )
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    let produce = |value: String| {
        let app = app.clone();
        let data = &sluice.data;
        async move {
            data.call(
                Method::POST,
                "/v1/streams/events/records",
                Some(&app),
                Some(json!({"records": [{"value": value}]})),
            )
            .await
        }
    };
    for i in 0..5 {
        let (status, body) = produce(format!("{i} {}", "x".repeat(1_000))).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let before = storage_used_until(&sluice, |used| used >= 5_000).await?;

    // One member heartbeats 400 times: several times the quota in log entries.
    let group = "/v1/streams/events/groups/g";
    let joined = sluice
        .data
        .post_ok(&app, &format!("{group}/join"), json!({"client_id": "c"}))
        .await?;
    let beat = json!({"member_id": joined["member_id"], "generation": joined["generation"]});
    for _ in 0..400 {
        sluice
            .data
            .post_ok(&app, &format!("{group}/heartbeat"), beat.clone())
            .await?;
    }
    // A marker record: the first report that counts it was measured after
    // every heartbeat above.
    let (status, body) = produce("marker".into()).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = storage_used_until(&sluice, |used| used != before).await?;
    assert!(
        after < before + 1_000,
        "heartbeats counted as stored bytes: {before} -> {after}"
    );
    let (status, body) = produce("still room".into()).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(())
}

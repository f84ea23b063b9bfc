//! Tenants' storage: brokers report bytes per tenant with each heartbeat, the control
//! plane sums the live brokers' latest reports into every heartbeat answer and into the
//! tenant's usage next to `max_storage_bytes`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, DEADLINE, TestServer, assert_invalid, assert_problem};

/// Registers broker `id` with the node key.
async fn register(api: &Api, id: &str) {
    let (status, body) = api
        .put(
            &format!("/internal/v1/nodes/{id}"),
            api.node_key(),
            json!({ "data_url": format!("http://{id}.invalid:9090") }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "register {id}: {body}");
}

/// Heartbeats as broker `id` with `body`; returns the raw answer.
async fn beat(api: &Api, id: &str, body: Value) -> (StatusCode, Value) {
    api.post(
        &format!("/internal/v1/nodes/{id}/heartbeat"),
        api.node_key(),
        body,
    )
    .await
}

/// Heartbeats as broker `id` reporting `storage` (a JSON object keyed by tenant id);
/// returns the acknowledgement's `storage_used`.
async fn report(api: &Api, id: &str, storage: Value) -> Value {
    let (status, ack) = beat(
        api,
        id,
        json!({ "applied_version": 0, "storage_bytes": storage }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "heartbeat of {id}: {ack}");
    ack["storage_used"].clone()
}

/// A tenant's id as brokers know it: from the topology feed. Polled, because
/// the feed learns of the tenant's commit through Postgres `NOTIFY` a moment
/// after the create has answered.
async fn tenant_id(api: &Api, name: &str) -> i64 {
    let started = Instant::now();
    loop {
        let (status, feed) = api
            .get("/internal/v1/feed?since=0&wait_ms=1000", api.node_key())
            .await;
        let found = feed["tenants"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == name)
            .and_then(|t| t["id"].as_i64());
        if let Some(id) = found {
            return id;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "tenant {name} not in the feed after {DEADLINE:?}: {status} {feed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tenant's storage usage as `key` reads it, with its storage limit.
async fn storage_usage(api: &Api, tenant: &str, key: &str) -> (i64, i64) {
    let (status, report) = api.get(&format!("/v1/tenants/{tenant}/quotas"), key).await;
    assert_eq!(status, StatusCode::OK, "quotas of {tenant}: {report}");
    let used = report["usage"]["storage_bytes"]
        .as_i64()
        .unwrap_or_else(|| panic!("usage.storage_bytes in {report}"));
    let limit = report["limits"]["max_storage_bytes"]
        .as_i64()
        .unwrap_or_else(|| panic!("limits.max_storage_bytes in {report}"));
    (used, limit)
}

#[tokio::test]
async fn live_brokers_reports_are_summed_per_tenant_and_replaced_by_the_next() {
    let server = TestServer::start().await;
    // Tenants first: with brokers registered, changes would wait for them to apply.
    let acme_key = server.create_tenant("acme").await;
    let globex_key = server.create_tenant("globex").await;
    let (a, b) = (
        tenant_id(&server, "acme").await,
        tenant_id(&server, "globex").await,
    );
    register(&server, "n1").await;
    register(&server, "n2").await;
    let (used, limit) = storage_usage(&server, "acme", &acme_key).await;
    assert_eq!((used, limit), (0, 1 << 30), "nothing reported yet");

    // JSON object keys are the tenant ids as strings, answers likewise.
    let used = report(
        &server,
        "n1",
        json!({ a.to_string(): 100, b.to_string(): 10 }),
    )
    .await;
    assert_eq!(used, json!({ a.to_string(): 100, b.to_string(): 10 }));
    let (status, ack) = beat(
        &server,
        "n2",
        json!({ "applied_version": 0, "storage_bytes": { a.to_string(): 50, b.to_string(): 7 } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["live_nodes"], 2, "{ack}");
    assert!(ack["version"].as_i64().is_some(), "{ack}");
    assert_eq!(
        ack["storage_used"],
        json!({ a.to_string(): 150, b.to_string(): 17 }),
        "both brokers counted, the caller's new report included"
    );

    // A new report replaces the broker's previous one: acme 100 → 30, globex 10 → gone.
    let used = report(&server, "n1", json!({ a.to_string(): 30 })).await;
    assert_eq!(used, json!({ a.to_string(): 80, b.to_string(): 7 }));

    // Each tenant sees its own sum (any key of it, or the operator), never the other's.
    assert_eq!(storage_usage(&server, "acme", &acme_key).await.0, 80);
    assert_eq!(storage_usage(&server, "acme", server.op_key()).await.0, 80);
    assert_eq!(storage_usage(&server, "globex", &globex_key).await.0, 7);
    assert_problem(
        &server.get("/v1/tenants/globex/quotas", &acme_key).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );

    // An empty report clears the broker's share.
    let used = report(&server, "n2", json!({})).await;
    assert_eq!(used, json!({ a.to_string(): 30 }));
    assert_eq!(storage_usage(&server, "globex", &globex_key).await.0, 0);
}

#[tokio::test]
async fn a_heartbeat_without_a_storage_report_is_an_empty_report() {
    let server = TestServer::start().await;
    let acme_key = server.create_tenant("acme").await;
    let a = tenant_id(&server, "acme").await;
    register(&server, "n1").await;
    register(&server, "n2").await;
    report(&server, "n1", json!({ a.to_string(): 1_000 })).await;
    report(&server, "n2", json!({ a.to_string(): 234 })).await;

    // A broker that predates storage reporting sends only its version: accepted,
    // and it now stores nothing as far as the control plane knows.
    let (status, ack) = beat(&server, "n2", json!({ "applied_version": 0 })).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["live_nodes"], 2, "{ack}");
    assert_eq!(
        ack["storage_used"],
        json!({ a.to_string(): 1_000 }),
        "{ack}"
    );
    assert_eq!(storage_usage(&server, "acme", &acme_key).await.0, 1_000);

    // With no report anywhere the answer carries an empty map, not a missing field.
    let (status, ack) = beat(&server, "n1", json!({ "applied_version": 0 })).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["storage_used"], json!({}), "{ack}");
    assert_eq!(storage_usage(&server, "acme", &acme_key).await.0, 0);
}

#[tokio::test]
async fn a_broker_silent_past_the_live_window_stops_counting() {
    let server = TestServer::start().await;
    let acme_key = server.create_tenant("acme").await;
    let a = tenant_id(&server, "acme").await;
    register(&server, "n1").await;
    register(&server, "n2").await;
    report(&server, "n1", json!({ a.to_string(): 5 })).await;
    let used = report(&server, "n2", json!({ a.to_string(): 70 })).await;
    assert_eq!(used, json!({ a.to_string(): 75 }));

    // n2 last heartbeated 16 s ago: past the 15 s window, without waiting for it.
    let db = server.db().await;
    let moved = sqlx::query(
        "UPDATE nodes SET last_heartbeat_at = now() - interval '16 seconds' WHERE id = 'n2'",
    )
    .execute(&db)
    .await
    .expect("age n2's heartbeat")
    .rows_affected();
    assert_eq!(moved, 1);

    let (status, ack) = beat(
        &server,
        "n1",
        json!({ "applied_version": 0, "storage_bytes": { a.to_string(): 5 } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["live_nodes"], 1, "{ack}");
    assert_eq!(ack["storage_used"], json!({ a.to_string(): 5 }), "{ack}");
    assert_eq!(storage_usage(&server, "acme", &acme_key).await.0, 5);

    // Back to life, its kept report counts again.
    let used = report(&server, "n2", json!({ a.to_string(): 70 })).await;
    assert_eq!(used, json!({ a.to_string(): 75 }));
    assert_eq!(storage_usage(&server, "acme", &acme_key).await.0, 75);
}

#[tokio::test]
async fn bad_storage_reports_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    server.create_tenant("acme").await;
    let a = tenant_id(&server, "acme").await;
    register(&server, "n1").await;
    report(&server, "n1", json!({ a.to_string(): 42 })).await;
    let field = format!("storage_bytes.{a}");
    let with = |storage: Value| json!({ "applied_version": 0, "storage_bytes": storage });

    let got = beat(&server, "n1", with(json!({ a.to_string(): -1 }))).await;
    assert_invalid(&got, &field, "type");
    let got = beat(&server, "n1", with(json!({ a.to_string(): "12" }))).await;
    assert_invalid(&got, &field, "type");
    let got = beat(&server, "n1", with(json!({ a.to_string(): 1.5 }))).await;
    assert_invalid(&got, &field, "type");
    // A key that is no tenant id names the map: serde cannot say which key it was.
    let got = beat(&server, "n1", with(json!({ "acme": 12 }))).await;
    assert_invalid(&got, "storage_bytes", "type");
    let got = beat(&server, "n1", with(json!([12]))).await;
    assert_invalid(&got, "storage_bytes", "type");
    // Tenant ids are positive; counts must fit the sums' BIGINT.
    let got = beat(&server, "n1", with(json!({ "0": 12 }))).await;
    assert_invalid(&got, "storage_bytes.0", "range");
    let got = beat(&server, "n1", with(json!({ a.to_string(): u64::MAX }))).await;
    assert_invalid(&got, &field, "range");

    // None of them touched the stored report.
    let used = report(&server, "n1", json!({ a.to_string(): 42 })).await;
    assert_eq!(used, json!({ a.to_string(): 42 }));
    let (status, ack) = beat(&server, "n1", with(json!({ a.to_string(): i64::MAX }))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the largest BIGINT is accepted: {ack}"
    );
}

#[tokio::test]
async fn storage_heartbeats_need_the_node_key_and_a_registered_node() {
    let server = TestServer::start().await;
    let acme_key = server.create_tenant("acme").await;
    let a = tenant_id(&server, "acme").await;
    register(&server, "n1").await;
    let body = json!({ "applied_version": 0, "storage_bytes": { a.to_string(): 9 } });
    let path = "/internal/v1/nodes/n1/heartbeat";

    let wrong = format!("nk_{:032x}", rand::random::<u128>());
    for key in [wrong.as_str(), acme_key.as_str(), server.op_key()] {
        assert_problem(
            &server.post(path, key, body.clone()).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    assert_problem(
        &server
            .request(reqwest::Method::POST, path, None, Some(body.clone()))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_problem(
        &beat(&server, "ghost", body.clone()).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    // Nothing refused was recorded.
    assert_eq!(storage_usage(&server, "acme", &acme_key).await.0, 0);
}

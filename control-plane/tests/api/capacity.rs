//! What a broker can host: brokers state a group limit and a disk reserve when they
//! register and their free disk bytes with each heartbeat; the control plane places
//! groups only where there is room and refuses a declare with 503 `capacity-exhausted`
//! (and `Retry-After`) when no live broker has any, leaving nothing behind.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Api, TestServer, assert_invalid, assert_problem};

/// A version no test reaches: a broker heartbeating it has applied everything,
/// so declares answer at once instead of waiting for it.
const APPLIED_EVERYTHING: i64 = 1 << 40;

async fn register(api: &Api, id: &str, body: Value) -> (StatusCode, Value) {
    api.put(&format!("/internal/v1/nodes/{id}"), api.node_key(), body)
        .await
}

async fn heartbeat(api: &Api, id: &str, disk_free_bytes: Option<u64>) {
    let (status, body) = api
        .post(
            &format!("/internal/v1/nodes/{id}/heartbeat"),
            api.node_key(),
            json!({ "applied_version": APPLIED_EVERYTHING, "disk_free_bytes": disk_free_bytes }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "heartbeat of {id}: {body}");
}

/// The node as the operator lists it.
async fn node(server: &TestServer, id: &str) -> Value {
    let (status, nodes) = server.get("/v1/nodes", server.op_key()).await;
    assert_eq!(status, StatusCode::OK, "{nodes}");
    nodes
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("node {id} in {nodes}"))
}

#[tokio::test]
async fn a_full_broker_refuses_new_groups_and_takes_them_again_once_some_go() {
    let server = TestServer::start().await;
    let api = server.api();
    let admin = server.create_tenant("acme").await;
    let (status, body) = register(
        &api,
        "n1",
        json!({ "data_url": "http://n1.invalid:9090", "max_groups": 2 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    heartbeat(&api, "n1", None).await;

    for name in ["a", "b"] {
        let (status, body) = server
            .put(&format!("/v1/queues/{name}"), &admin, json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
    assert_eq!(node(&server, "n1").await["hosted_groups"], 2);

    // Full: refused with a retry time, and nothing of the queue is left.
    let response = reqwest::Client::new()
        .put(server.url("/v1/queues/c"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .expect("declare");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "Retry-After: {retry_after:?}"
    );
    let problem: Value = response.json().await.expect("problem");
    assert_problem(
        &(StatusCode::SERVICE_UNAVAILABLE, problem.clone()),
        StatusCode::SERVICE_UNAVAILABLE,
        "capacity-exhausted",
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("1 live broker"),
        "{problem}"
    );
    let (status, _) = server.get("/v1/queues/c", &admin).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused declare leaves no queue"
    );
    let (status, body) = server.put("/v1/queues/a", &admin, json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an existing queue redeclares while full: {body}"
    );

    // A stream needing more partitions than there is room for is refused whole.
    let (status, _) = server.delete("/v1/queues/b", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let refused = server
        .put("/v1/streams/clicks", &admin, json!({ "partitions": 2 }))
        .await;
    assert_problem(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "capacity-exhausted",
    );
    let (status, _) = server.get("/v1/streams/clicks", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no partition of it is left");
    assert_eq!(node(&server, "n1").await["hosted_groups"], 1);

    let (status, body) = server.put("/v1/queues/c", &admin, json!({})).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "room again after a delete: {body}"
    );
    assert_eq!(node(&server, "n1").await["hosted_groups"], 2);
}

#[tokio::test]
async fn a_broker_down_to_its_disk_reserve_takes_no_new_group() {
    let server = TestServer::start().await;
    let api = server.api();
    let admin = server.create_tenant("acme").await;
    let (status, _) = register(
        &api,
        "n1",
        json!({ "data_url": "http://n1.invalid:9090", "disk_reserve_bytes": 1_000_000 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    heartbeat(&api, "n1", Some(999_999)).await;
    let refused = server.put("/v1/queues/jobs", &admin, json!({})).await;
    assert_problem(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "capacity-exhausted",
    );
    assert_eq!(node(&server, "n1").await["disk_free_bytes"], 999_999);

    heartbeat(&api, "n1", Some(50_000_000)).await;
    let (status, body) = server.put("/v1/queues/jobs", &admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn groups_go_to_the_broker_with_room() {
    let server = TestServer::start().await;
    let api = server.api();
    let admin = server.create_tenant("acme").await;
    for (id, max) in [("n1", 1), ("n2", 100)] {
        let (status, _) = register(
            &api,
            id,
            json!({ "data_url": format!("http://{id}.invalid:9090"), "max_groups": max }),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        heartbeat(&api, id, None).await;
    }
    for name in ["a", "b", "c"] {
        let (status, body) = server
            .put(&format!("/v1/queues/{name}"), &admin, json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
    assert_eq!(node(&server, "n1").await["hosted_groups"], 1);
    assert_eq!(node(&server, "n2").await["hosted_groups"], 2);
}

#[tokio::test]
async fn bad_capacity_figures_are_refused_by_field() {
    let server = TestServer::start().await;
    let api = server.api();
    let zero = register(
        &api,
        "n1",
        json!({ "data_url": "http://n1.invalid:9090", "max_groups": 0 }),
    )
    .await;
    assert_invalid(&zero, "max_groups", "range");
    let huge = register(
        &api,
        "n1",
        json!({ "data_url": "http://n1.invalid:9090", "disk_reserve_bytes": u64::MAX }),
    )
    .await;
    assert_invalid(&huge, "disk_reserve_bytes", "range");
    let (status, _) = register(&api, "n1", json!({ "data_url": "http://n1.invalid:9090" })).await;
    assert_eq!(status, StatusCode::OK);
    let huge_free = api
        .post(
            "/internal/v1/nodes/n1/heartbeat",
            api.node_key(),
            json!({ "applied_version": 0, "disk_free_bytes": u64::MAX }),
        )
        .await;
    assert_invalid(&huge_free, "disk_free_bytes", "range");
    let negative = api
        .post(
            "/internal/v1/nodes/n1/heartbeat",
            api.node_key(),
            json!({ "applied_version": 0, "disk_free_bytes": -1 }),
        )
        .await;
    assert_eq!(
        negative.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        negative.1
    );

    // A tenant's key is not a node key.
    let admin = server.create_tenant("acme").await;
    let tenant = api
        .request(
            Method::PUT,
            "/internal/v1/nodes/n9",
            Some(&admin),
            Some(json!({ "data_url": "http://n9.invalid:9090", "max_groups": 5 })),
        )
        .await;
    assert_problem(&tenant, StatusCode::UNAUTHORIZED, "unauthorized");
}

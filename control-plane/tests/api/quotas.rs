//! `/v1/tenants/{tenant}/quotas`: reading limits with usage, operator changes, and the
//! count quotas enforced exactly — also when many creates race for the last slot.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{Api, TestServer, assert_invalid, assert_problem};

#[track_caller]
fn assert_quota_exceeded(got: &(StatusCode, Value), quota: &str, limit: i64, used: i64) {
    assert_problem(got, StatusCode::FORBIDDEN, "quota-exceeded");
    assert_eq!(got.1["quota"], quota, "{}", got.1);
    assert_eq!(got.1["limit"], limit, "{}", got.1);
    assert_eq!(got.1["used"], used, "{}", got.1);
}

#[tokio::test]
async fn tenant_reads_its_own_quotas_with_usage() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let publisher = server.create_key(&admin, &["publish"]).await;
    let globex = server.create_tenant("globex").await;
    let (s, _) = server
        .put("/v1/exchanges/x", &admin, json!({"type": "direct"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for q in ["a", "b"] {
        let (s, _) = server
            .put(&format!("/v1/queues/{q}"), &admin, json!({}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, _) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x", "destination": "a"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = server
        .put(
            "/v1/streams/s",
            &admin,
            json!({"partitions": 3, "max_message_bytes": 1024}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Any key of the tenant reads them.
    for key in [&admin, &publisher] {
        let (status, report) = server.get("/v1/tenants/acme/quotas", key).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["tenant"], "acme");
        assert_eq!(report["plan"], "free");
        assert_eq!(
            report["usage"],
            json!({"queues": 2, "exchanges": 1, "bindings": 1, "streams": 1,
                   "partitions": 3, "api_keys": 2, "storage_bytes": 0})
        );
        assert_eq!(
            report["limits"],
            json!({
                "max_queues": 10, "max_exchanges": 10, "max_bindings": 50, "max_streams": 2,
                "max_partitions": 8, "max_api_keys": 5, "max_message_bytes": 262_144,
                "publish_messages_per_second": 100, "publish_bytes_per_second": 1_048_576,
                "max_storage_bytes": 1_073_741_824u64,
            })
        );
    }
    let (status, op_view) = server.get("/v1/tenants/acme/quotas", server.op_key()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(op_view["usage"]["queues"], 2);

    // Another tenant's key: as if the tenant did not exist.
    let got = server.get("/v1/tenants/acme/quotas", &globex).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    let got = server
        .get("/v1/tenants/nosuch/quotas", server.op_key())
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    let (_, theirs) = server.get("/v1/tenants/globex/quotas", &globex).await;
    assert_eq!(theirs["usage"]["queues"], 0);
}

#[tokio::test]
async fn operator_patches_some_quotas() {
    let server = TestServer::start().await;
    let op = server.op_key();
    let admin = server.create_tenant_on("acme", "enterprise").await;
    let (_, before) = server.get("/v1/tenants/acme/quotas", op).await;
    assert_eq!(before["limits"]["max_queues"], 10_000);
    let (status, after) = server
        .patch(
            "/v1/tenants/acme/quotas",
            op,
            json!({"max_queues": 3, "max_message_bytes": 4096}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["plan"], "enterprise");
    let mut want = before["limits"].clone();
    want["max_queues"] = json!(3);
    want["max_message_bytes"] = json!(4096);
    assert_eq!(after["limits"], want);
    let (_, read) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(read["limits"], want);
    // An empty patch changes nothing; zero counts are allowed.
    let (status, same) = server.patch("/v1/tenants/acme/quotas", op, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["limits"], want);
    let (status, zero) = server
        .patch("/v1/tenants/acme/quotas", op, json!({"max_streams": 0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(zero["limits"]["max_streams"], 0);
}

#[tokio::test]
async fn quota_patch_is_operator_only_and_validated() {
    let server = TestServer::start().await;
    let op = server.op_key();
    let admin = server.create_tenant("acme").await;
    let got = server
        .patch(
            "/v1/tenants/acme/quotas",
            &admin,
            json!({"max_queues": 1000}),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let patch = |body: Value| server.patch("/v1/tenants/acme/quotas", op, body);
    assert_invalid(
        &patch(json!({"max_queues": -1})).await,
        "max_queues",
        "range",
    );
    assert_invalid(
        &patch(json!({"max_api_keys": -5})).await,
        "max_api_keys",
        "range",
    );
    for size in [
        "max_message_bytes",
        "publish_messages_per_second",
        "publish_bytes_per_second",
        "max_storage_bytes",
    ] {
        assert_invalid(&patch(json!({ size: 0 })).await, size, "range");
    }
    assert_invalid(
        &patch(json!({"max_queues": "many"})).await,
        "max_queues",
        "type",
    );
    assert_invalid(
        &patch(json!({"max_queues": 1.5})).await,
        "max_queues",
        "type",
    );
    assert_invalid(
        &patch(json!({"max_topics": 1})).await,
        "max_topics",
        "unknown-field",
    );
    let got = server
        .patch("/v1/tenants/nosuch/quotas", op, json!({"max_queues": 1}))
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    let (_, report) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(report["limits"]["max_queues"], 10, "unchanged: {report}");
}

#[tokio::test]
async fn count_quotas_refuse_creates_at_the_limit() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    server
        .set_quotas(
            "acme",
            json!({"max_queues": 1, "max_exchanges": 1, "max_bindings": 1, "max_streams": 1}),
        )
        .await;
    assert_eq!(
        server.put("/v1/queues/q1", &admin, json!({})).await.0,
        StatusCode::CREATED
    );
    let got = server.put("/v1/queues/q2", &admin, json!({})).await;
    assert_quota_exceeded(&got, "max_queues", 1, 1);
    // Re-declaring what exists is not a create.
    assert_eq!(
        server.put("/v1/queues/q1", &admin, json!({})).await.0,
        StatusCode::OK
    );

    let direct = json!({"type": "direct"});
    assert_eq!(
        server
            .put("/v1/exchanges/x1", &admin, direct.clone())
            .await
            .0,
        StatusCode::CREATED
    );
    let got = server.put("/v1/exchanges/x2", &admin, direct).await;
    assert_quota_exceeded(&got, "max_exchanges", 1, 1);

    let bind = |key: &str| json!({"source": "x1", "destination": "q1", "routing_key": key});
    assert_eq!(
        server.post("/v1/bindings", &admin, bind("a")).await.0,
        StatusCode::CREATED
    );
    let got = server.post("/v1/bindings", &admin, bind("b")).await;
    assert_quota_exceeded(&got, "max_bindings", 1, 1);
    assert_eq!(
        server.post("/v1/bindings", &admin, bind("a")).await.0,
        StatusCode::OK
    );

    let stream = json!({"max_message_bytes": 1024});
    assert_eq!(
        server.put("/v1/streams/s1", &admin, stream.clone()).await.0,
        StatusCode::CREATED
    );
    let got = server.put("/v1/streams/s2", &admin, stream).await;
    assert_quota_exceeded(&got, "max_streams", 1, 1);

    // Deleting frees the slot.
    assert_eq!(
        server.delete("/v1/queues/q1", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.put("/v1/queues/q2", &admin, json!({})).await.0,
        StatusCode::CREATED
    );

    // Lowering a limit below use keeps what exists and refuses new creates.
    server.set_quotas("acme", json!({"max_queues": 0})).await;
    let (_, report) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(report["usage"]["queues"], 1);
    assert_eq!(server.get("/v1/queues/q2", &admin).await.0, StatusCode::OK);
    let got = server.put("/v1/queues/q3", &admin, json!({})).await;
    assert_quota_exceeded(&got, "max_queues", 0, 1);
}

#[tokio::test]
async fn partition_quota_counts_partitions_not_streams() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    server
        .set_quotas("acme", json!({"max_partitions": 5, "max_streams": 10}))
        .await;
    let spec = |partitions: u32| json!({"partitions": partitions, "max_message_bytes": 1024});
    assert_eq!(
        server.put("/v1/streams/a", &admin, spec(3)).await.0,
        StatusCode::CREATED
    );
    let got = server.put("/v1/streams/b", &admin, spec(3)).await;
    assert_quota_exceeded(&got, "max_partitions", 5, 3);
    assert_eq!(
        server.put("/v1/streams/b", &admin, spec(2)).await.0,
        StatusCode::CREATED
    );
    let got = server.put("/v1/streams/c", &admin, spec(1)).await;
    assert_quota_exceeded(&got, "max_partitions", 5, 5);
}

#[tokio::test]
async fn api_key_quota_counts_active_keys() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    server.set_quotas("acme", json!({"max_api_keys": 2})).await;
    let second = server.create_key(&admin, &["publish"]).await;
    let got = server
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "third", "scopes": ["consume"]}),
        )
        .await;
    assert_quota_exceeded(&got, "max_api_keys", 2, 2);
    // A revoked key no longer counts.
    let id = second.split('_').nth(1).unwrap();
    assert_eq!(
        server.delete(&format!("/v1/api-keys/{id}"), &admin).await.0,
        StatusCode::OK
    );
    server.create_key(&admin, &["consume"]).await;
    let (_, report) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(report["usage"]["api_keys"], 2);
}

/// Fires `n` concurrent requests and returns their statuses with the bodies.
async fn race<F, Fut>(n: usize, api: &Api, request: F) -> Vec<(StatusCode, Value)>
where
    F: Fn(Api, usize) -> Fut,
    Fut: std::future::Future<Output = (StatusCode, Value)> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    for i in 0..n {
        tasks.spawn(request(api.clone(), i));
    }
    let mut results = Vec::new();
    while let Some(result) = tasks.join_next().await {
        results.push(result.expect("request task"));
    }
    results
}

fn count(results: &[(StatusCode, Value)], status: StatusCode) -> usize {
    results.iter().filter(|(s, _)| *s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_queue_declares_cannot_pass_the_queue_quota() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    server.set_quotas("acme", json!({"max_queues": 1})).await;
    let results = race(10, &server.api(), |api, i| {
        let admin = admin.clone();
        async move {
            api.put(&format!("/v1/queues/q{i}"), &admin, json!({}))
                .await
        }
    })
    .await;
    assert_eq!(count(&results, StatusCode::CREATED), 1, "{results:?}");
    assert_eq!(count(&results, StatusCode::FORBIDDEN), 9, "{results:?}");
    for r in results.iter().filter(|(s, _)| *s == StatusCode::FORBIDDEN) {
        assert_quota_exceeded(r, "max_queues", 1, 1);
    }
    let (_, page) = server.get("/v1/queues", &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_stream_declares_cannot_pass_the_partition_quota() {
    let server = TestServer::start().await;
    let admin = server.create_tenant_on("acme", "standard").await;
    server
        .set_quotas("acme", json!({"max_partitions": 4}))
        .await;
    let results = race(10, &server.api(), |api, i| {
        let admin = admin.clone();
        async move {
            api.put(
                &format!("/v1/streams/s{i}"),
                &admin,
                json!({"partitions": 3}),
            )
            .await
        }
    })
    .await;
    assert_eq!(count(&results, StatusCode::CREATED), 1, "{results:?}");
    assert_eq!(count(&results, StatusCode::FORBIDDEN), 9, "{results:?}");
    for r in results.iter().filter(|(s, _)| *s == StatusCode::FORBIDDEN) {
        assert_quota_exceeded(r, "max_partitions", 4, 3);
    }
    let (_, report) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(report["usage"]["partitions"], 3);
    assert_eq!(report["usage"]["streams"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_key_creates_cannot_pass_the_key_quota() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    server.set_quotas("acme", json!({"max_api_keys": 3})).await;
    let results = race(8, &server.api(), |api, i| {
        let admin = admin.clone();
        async move {
            api.post(
                "/v1/api-keys",
                &admin,
                json!({"name": format!("k{i}"), "scopes": ["publish"]}),
            )
            .await
        }
    })
    .await;
    assert_eq!(count(&results, StatusCode::CREATED), 2, "{results:?}");
    assert_eq!(count(&results, StatusCode::FORBIDDEN), 6, "{results:?}");
    let (_, report) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(report["usage"]["api_keys"], 3);
}

/// Usage is kept as counters (by triggers): they follow creates, deletes and the
/// deletes that cascade (a queue's bindings), so a declare never counts rows.
#[tokio::test]
async fn usage_counters_follow_deletes_and_cascades() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let usage = |report: &Value| {
        let u = &report["usage"];
        [
            &u["queues"],
            &u["exchanges"],
            &u["bindings"],
            &u["streams"],
            &u["partitions"],
        ]
        .map(|v| v.as_i64().unwrap_or(-1))
    };
    for (path, body) in [
        ("/v1/exchanges/x1", json!({"type": "direct"})),
        ("/v1/queues/q1", json!({})),
        ("/v1/queues/q2", json!({})),
        ("/v1/streams/s1", json!({"partitions": 3})),
    ] {
        let (status, body) = server.put(path, &admin, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
    }
    for (queue, key) in [("q1", "a"), ("q1", "b"), ("q2", "a")] {
        let binding = json!({"source": "x1", "destination": queue, "routing_key": key});
        assert_eq!(
            server.post("/v1/bindings", &admin, binding).await.0,
            StatusCode::CREATED
        );
    }
    let (_, report) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(usage(&report), [2, 1, 3, 1, 3], "{report}");

    // A queue deleted takes its two bindings; an exchange its last one.
    assert_eq!(
        server.delete("/v1/queues/q1", &admin).await.0,
        StatusCode::OK
    );
    let (_, report) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(usage(&report), [1, 1, 1, 1, 3], "{report}");
    assert_eq!(
        server.delete("/v1/exchanges/x1", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.delete("/v1/streams/s1", &admin).await.0,
        StatusCode::OK
    );
    let (_, report) = server.get("/v1/tenants/acme/quotas", &admin).await;
    assert_eq!(usage(&report), [1, 0, 0, 0, 0], "{report}");

    // Another tenant's counters start at zero and are its own.
    let other = server.create_tenant("other").await;
    let (_, report) = server.get("/v1/tenants/other/quotas", &other).await;
    assert_eq!(usage(&report), [0, 0, 0, 0, 0], "{report}");
    let (status, _) = server.get("/v1/tenants/acme/quotas", &other).await;
    assert_ne!(
        status,
        StatusCode::OK,
        "another tenant's usage is not theirs to read"
    );
}

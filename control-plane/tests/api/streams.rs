//! `/v1/streams`: defaults filled in on read-back, validation (partitions, retention,
//! the tenant's message size), idempotent declares, deletes and isolation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_invalid, assert_problem, names};

const DAY_MS: u64 = 86_400_000;

#[tokio::test]
async fn defaults_are_filled_in_on_read_back() {
    let server = TestServer::start().await;
    // The standard plan allows 1 MiB messages, the default record size.
    let admin = server.create_tenant_on("acme", "standard").await;
    let (status, created) = server.put("/v1/streams/clicks", &admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let mut settings = created.clone();
    for bookkeeping in ["name", "topology_version", "created_at"] {
        settings.as_object_mut().unwrap().remove(bookkeeping);
    }
    assert_eq!(
        settings,
        json!({
            "partitions": 1,
            "replication_factor": 1,
            "retention_ms": 7 * DAY_MS,
            "retention_bytes": null,
            "local_retention_ms": null,
            "local_retention_bytes": null,
            "max_message_bytes": null,
        })
    );
    let (status, read) = server.get("/v1/streams/clicks", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);
    let (status, again) = server
        .put("/v1/streams/clicks", &admin, json!({"partitions": 1}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, created);
}

#[tokio::test]
async fn free_tenant_can_declare_a_stream_with_defaults() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, created) = server.put("/v1/streams/clicks", &admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

#[tokio::test]
async fn every_setting_reads_back_and_null_retention_keeps_forever() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let spec = json!({
        "partitions": 4,
        "replication_factor": 1,
        "retention_ms": 30 * DAY_MS,
        "retention_bytes": 1u64 << 30,
        "local_retention_ms": DAY_MS,
        "local_retention_bytes": 1u64 << 20,
        "max_message_bytes": 262_144,
    });
    let (status, created) = server.put("/v1/streams/orders", &admin, spec.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for (field, want) in spec.as_object().unwrap() {
        assert_eq!(&created[field], want, "{field}");
    }
    let (status, forever) = server
        .put(
            "/v1/streams/ledger",
            &admin,
            json!({"retention_ms": null, "max_message_bytes": 1024}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{forever}");
    assert_eq!(forever["retention_ms"], Value::Null);
    let (_, read) = server.get("/v1/streams/ledger", &admin).await;
    assert_eq!(read["retention_ms"], Value::Null);
}

#[tokio::test]
async fn stream_declare_validates() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    // Within the free plan's 256 KiB unless the case is about that.
    let small = |mut body: Value| {
        let obj = body.as_object_mut().unwrap();
        obj.entry("max_message_bytes").or_insert(json!(1024));
        body
    };
    let cases = [
        (json!({"partitions": 0}), "partitions", "range"),
        (json!({"partitions": 1025}), "partitions", "range"),
        (json!({"partitions": -1}), "partitions", "type"),
        (json!({"partitions": "4"}), "partitions", "type"),
        (
            json!({"replication_factor": 2}),
            "replication_factor",
            "odd",
        ),
        (
            json!({"replication_factor": 3}),
            "replication_factor",
            "available",
        ),
        (json!({"retention_ms": 999}), "retention_ms", "range"),
        (json!({"retention_bytes": 1024}), "retention_bytes", "range"),
        (
            json!({"local_retention_ms": 999}),
            "local_retention_ms",
            "range",
        ),
        (
            json!({"retention_ms": DAY_MS, "local_retention_ms": 2 * DAY_MS}),
            "local_retention_ms",
            "range",
        ),
        (
            json!({"retention_bytes": 1u64 << 20, "local_retention_bytes": 1u64 << 21}),
            "local_retention_bytes",
            "range",
        ),
        (
            json!({"max_message_bytes": 0}),
            "max_message_bytes",
            "range",
        ),
        (
            json!({"max_message_bytes": 262_145}),
            "max_message_bytes",
            "range",
        ),
        (json!({"compaction": true}), "compaction", "unknown-field"),
    ];
    for (body, field, rule) in cases {
        let got = server
            .put("/v1/streams/s", &admin, small(body.clone()))
            .await;
        assert_eq!(got.1["field"], field, "{body} → {}", got.1);
        assert_invalid(&got, field, rule);
    }
    for reserved in ["default", "amq.s"] {
        let got = server
            .put(&format!("/v1/streams/{reserved}"), &admin, small(json!({})))
            .await;
        assert_invalid(&got, "name", "reserved");
    }
    let (_, page) = server.get("/v1/streams", &admin).await;
    assert_eq!(page["items"], json!([]), "nothing was declared");

    // The message size limit follows the tenant's quota.
    server
        .set_quotas("acme", json!({"max_message_bytes": 1_048_576}))
        .await;
    let (status, body) = server
        .put(
            "/v1/streams/s",
            &admin,
            json!({"max_message_bytes": 262_145}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn redeclare_with_other_settings_is_a_conflict() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, _) = server
        .put(
            "/v1/streams/s",
            &admin,
            json!({"partitions": 2, "max_message_bytes": 1024}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let got = server
        .put(
            "/v1/streams/s",
            &admin,
            json!({"partitions": 3, "max_message_bytes": 1024}),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "declare-conflict");
    assert_eq!(got.1["field"], "partitions");
    assert_eq!(
        got.1["differences"],
        json!([{"field": "partitions", "current": 2, "requested": 3}])
    );
    let (_, read) = server.get("/v1/streams/s", &admin).await;
    assert_eq!(read["partitions"], 2);
}

#[tokio::test]
async fn delete_list_scopes_and_isolation() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let consumer = server.create_key(&admin, &["consume"]).await;
    let globex = server.create_tenant("globex").await;
    let spec = json!({"max_message_bytes": 1024});
    let got = server.put("/v1/streams/s1", &consumer, spec.clone()).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    for s in ["s2", "s1"] {
        let (status, _) = server
            .put(&format!("/v1/streams/{s}"), &admin, spec.clone())
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, page) = server.get("/v1/streams?limit=1", &consumer).await;
    assert_eq!(names(&page), ["s1"]);
    assert_eq!(page["next"], "s1");
    let (_, page) = server.get("/v1/streams?after=s1", &consumer).await;
    assert_eq!(names(&page), ["s2"]);
    assert_invalid(
        &server.get("/v1/streams?limit=0", &admin).await,
        "limit",
        "range",
    );

    assert_problem(
        &server.get("/v1/streams/s1", &globex).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete("/v1/streams/s1", &globex).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete("/v1/streams/s1", &consumer).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    let (status, deleted) = server.delete("/v1/streams/s1", &admin).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["name"], "s1");
    assert_problem(
        &server.get("/v1/streams/s1", &admin).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete("/v1/streams/s1", &admin).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let (_, page) = server.get("/v1/streams", &admin).await;
    assert_eq!(names(&page), ["s2"]);
}

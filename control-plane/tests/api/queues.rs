//! `/v1/queues`: idempotent declares, every setting's validation, dead-letter exchange
//! references, deletes that take the queue's bindings with them, paging.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_invalid, assert_problem, names};

#[tokio::test]
async fn declare_fills_defaults_and_is_idempotent() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, created) = server.put("/v1/queues/work", &admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "work");
    for (field, want) in [
        ("message_ttl_ms", json!(null)),
        ("max_length", json!(null)),
        ("overflow", json!("drop-head")),
        ("dead_letter_exchange", json!(null)),
        ("delivery_limit", json!(null)),
        ("retry", json!(null)),
        ("replication_factor", json!(1)),
        ("single_active_consumer", json!(false)),
        ("message_groups", json!(false)),
        ("lease_ms", json!(30_000)),
    ] {
        assert_eq!(created[field], want, "{field} of {created}");
    }
    assert!(created["topology_version"].as_i64().unwrap() > 0);

    let (status, again) = server
        .put(
            "/v1/queues/work",
            &admin,
            json!({"lease_ms": 30_000, "overflow": "drop-head"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, created);
    let (status, read) = server.get("/v1/queues/work", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);
}

#[tokio::test]
async fn every_setting_reads_back_as_declared() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, _) = server
        .put("/v1/exchanges/dlx", &admin, json!({"type": "direct"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let spec = json!({
        "message_ttl_ms": 60_000,
        "max_length": 1000,
        "max_length_bytes": 1_048_576,
        "overflow": "dead-letter",
        "dead_letter_exchange": "dlx",
        "dead_letter_routing_key": "work.dead",
        "delivery_limit": 5,
        "retry": {"initial_delay_ms": 100, "multiplier": 3.0, "max_delay_ms": 10_000},
        "dedup_window_ms": 5_000,
        "replication_factor": 1,
        "single_active_consumer": true,
        "message_groups": true,
        "lease_ms": 60_000,
    });
    let (status, created) = server.put("/v1/queues/work", &admin, spec.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for (field, want) in spec.as_object().unwrap() {
        assert_eq!(&created[field], want, "{field}");
    }
    let (status, again) = server.put("/v1/queues/work", &admin, spec).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, created);
    // The retry multiplier has a default.
    let (status, q) = server
        .put(
            "/v1/queues/retry",
            &admin,
            json!({"retry": {"initial_delay_ms": 100, "max_delay_ms": 1000}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{q}");
    assert_eq!(q["retry"]["multiplier"], 2.0);
}

#[tokio::test]
async fn redeclare_with_other_settings_is_a_conflict() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, _) = server
        .put("/v1/queues/work", &admin, json!({"max_length": 10}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let got = server
        .put("/v1/queues/work", &admin, json!({"max_length": 20}))
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "declare-conflict");
    assert_eq!(got.1["field"], "max_length");
    assert_eq!(
        got.1["differences"],
        json!([{"field": "max_length", "current": 10, "requested": 20}])
    );
    // Leaving out a setting asks for its default, which differs too.
    let got = server.put("/v1/queues/work", &admin, json!({})).await;
    assert_problem(&got, StatusCode::CONFLICT, "declare-conflict");
    assert_eq!(
        got.1["differences"],
        json!([{"field": "max_length", "current": 10, "requested": null}])
    );
    let (_, read) = server.get("/v1/queues/work", &admin).await;
    assert_eq!(read["max_length"], 10);
}

#[tokio::test]
async fn queue_declare_validates_every_setting() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (server, admin) = (&server, &admin);
    let put = move |name: &str, body: Value| {
        let path = format!("/v1/queues/{name}");
        async move { server.put(&path, admin, body).await }
    };
    let cases = [
        (json!({"message_ttl_ms": 0}), "message_ttl_ms", "range"),
        (
            json!({"message_ttl_ms": 365 * 86_400_000u64 + 1}),
            "message_ttl_ms",
            "range",
        ),
        (json!({"message_ttl_ms": -1}), "message_ttl_ms", "type"),
        (json!({"message_ttl_ms": "1s"}), "message_ttl_ms", "type"),
        (json!({"max_length": 0}), "max_length", "range"),
        (json!({"max_length_bytes": 0}), "max_length_bytes", "range"),
        (json!({"delivery_limit": 0}), "delivery_limit", "range"),
        (json!({"delivery_limit": 10_001}), "delivery_limit", "range"),
        (json!({"dedup_window_ms": 0}), "dedup_window_ms", "range"),
        (json!({"lease_ms": 999}), "lease_ms", "range"),
        (json!({"lease_ms": 43_200_001}), "lease_ms", "range"),
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
        (
            json!({"replication_factor": 0}),
            "replication_factor",
            "odd",
        ),
        (json!({"overflow": "drop-tail"}), "overflow", "enum"),
        (json!({"overflow": "dead-letter"}), "overflow", "requires"),
        (
            json!({"dead_letter_routing_key": "k"}),
            "dead_letter_routing_key",
            "requires",
        ),
        (
            json!({"dead_letter_exchange": "no such"}),
            "dead_letter_exchange",
            "charset",
        ),
        (
            json!({"dead_letter_exchange": "nosuch"}),
            "dead_letter_exchange",
            "must-exist",
        ),
        (
            json!({"single_active_consumer": "yes"}),
            "single_active_consumer",
            "type",
        ),
        (json!({"durable": true}), "durable", "unknown-field"),
        (
            json!({"retry": {"initial_delay_ms": 0, "max_delay_ms": 10}}),
            "retry.initial_delay_ms",
            "range",
        ),
        (
            json!({"retry": {"initial_delay_ms": 100, "max_delay_ms": 10}}),
            "retry.max_delay_ms",
            "range",
        ),
        (
            json!({"retry": {"initial_delay_ms": 1, "multiplier": 0.5, "max_delay_ms": 10}}),
            "retry.multiplier",
            "range",
        ),
        (
            json!({"retry": {"initial_delay_ms": 1, "multiplier": 11, "max_delay_ms": 10}}),
            "retry.multiplier",
            "range",
        ),
        (
            json!({"retry": {"initial_delay_ms": 1}}),
            "retry.max_delay_ms",
            "required",
        ),
        (
            json!({"retry": {"initial_delay_ms": 1, "max_delay_ms": 10, "jitter": true}}),
            "retry.jitter",
            "unknown-field",
        ),
    ];
    for (body, field, rule) in cases {
        let got = put("work", body.clone()).await;
        assert_eq!(got.1["field"], field, "{body} → {}", got.1);
        assert_invalid(&got, field, rule);
    }
    let (_, exchanges) = server.get("/v1/exchanges", admin).await;
    assert_eq!(exchanges["items"], json!([]));
    let long_key = "k".repeat(256);
    let (status, _) = server
        .put("/v1/exchanges/dlx", admin, json!({"type": "direct"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_invalid(
        &put(
            "work",
            json!({"dead_letter_exchange": "dlx", "dead_letter_routing_key": long_key}),
        )
        .await,
        "dead_letter_routing_key",
        "length",
    );
    for reserved in ["default", "amq.q", "sluice.q"] {
        assert_invalid(&put(reserved, json!({})).await, "name", "reserved");
    }
    assert_invalid(&put(".q", json!({})).await, "name", "charset");
    assert_invalid(&put(&"q".repeat(129), json!({})).await, "name", "length");

    let (_, page) = server.get("/v1/queues", admin).await;
    assert_eq!(page["items"], json!([]), "nothing was declared");
    // A name of exactly 128 characters is fine.
    let (status, _) = put(&"q".repeat(128), json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn publish_only_key_cannot_declare_or_delete_queues() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let publisher = server.create_key(&admin, &["publish"]).await;
    let consumer = server.create_key(&admin, &["consume"]).await;
    for key in [&publisher, &consumer] {
        let got = server.put("/v1/queues/work", key, json!({})).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let got = server
        .put("/v1/queues/work", server.op_key(), json!({}))
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = server.put("/v1/queues/work", &admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        server.get("/v1/queues/work", &publisher).await.0,
        StatusCode::OK
    );
    let got = server.delete("/v1/queues/work", &publisher).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        server.get("/v1/queues/work", &admin).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn another_tenants_queue_is_not_found() {
    let server = TestServer::start().await;
    let acme = server.create_tenant("acme").await;
    let globex = server.create_tenant("globex").await;
    let (status, _) = server.put("/v1/queues/work", &acme, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_problem(
        &server.get("/v1/queues/work", &globex).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete("/v1/queues/work", &globex).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let (_, page) = server.get("/v1/queues", &globex).await;
    assert_eq!(page["items"], json!([]));
    // A dead-letter exchange must exist in the caller's own tenant.
    let (status, _) = server
        .put("/v1/exchanges/dlx", &acme, json!({"type": "direct"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_invalid(
        &server
            .put(
                "/v1/queues/q",
                &globex,
                json!({"dead_letter_exchange": "dlx"}),
            )
            .await,
        "dead_letter_exchange",
        "must-exist",
    );
    assert_eq!(server.get("/v1/queues/work", &acme).await.0, StatusCode::OK);
}

#[tokio::test]
async fn delete_removes_the_bindings_to_the_queue() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (s, _) = server
        .put("/v1/exchanges/x", &admin, json!({"type": "topic"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for q in ["a", "b"] {
        let (s, _) = server
            .put(&format!("/v1/queues/{q}"), &admin, json!({}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    for (q, key) in [("a", "one.#"), ("a", "two.*"), ("b", "#")] {
        let (s, body) = server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x", "destination": q, "routing_key": key}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (status, deleted) = server.delete("/v1/queues/a?if_empty=true", &admin).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["name"], "a");
    assert_eq!(deleted["bindings_removed"], 2);
    let (_, page) = server.get("/v1/bindings", &admin).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["destination"], "b");
    assert_problem(
        &server.get("/v1/queues/a", &admin).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete("/v1/queues/a", &admin).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_invalid(
        &server.delete("/v1/queues/b?purge=1", &admin).await,
        "purge",
        "unknown-field",
    );
    // Re-declaring starts with no bindings.
    let (s, _) = server.put("/v1/queues/a", &admin, json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, page) = server.get("/v1/bindings?destination=a", &admin).await;
    assert_eq!(page["items"], json!([]));
}

#[tokio::test]
async fn queues_list_pages_in_name_order() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let all = ["q1", "q2", "q3", "q4", "q5", "q6", "q7"];
    for q in all.iter().rev() {
        let (s, _) = server
            .put(&format!("/v1/queues/{q}"), &admin, json!({}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/queues?limit=3".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = server.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        seen.extend(names(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/queues?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);
    let (_, page) = server.get("/v1/queues?after=q5", &admin).await;
    assert_eq!(names(&page), ["q6", "q7"]);
    assert_invalid(
        &server.get("/v1/queues?limit=0", &admin).await,
        "limit",
        "range",
    );
    assert_invalid(
        &server.get("/v1/queues?limit=-1", &admin).await,
        "limit",
        "type",
    );
}

#[tokio::test]
async fn concurrent_declares_of_one_queue_create_it_once() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (api, admin) = (server.api(), admin.clone());
        tasks.spawn(async move {
            api.put("/v1/queues/shared", &admin, json!({"max_length": 5}))
                .await
        });
    }
    let mut statuses = Vec::new();
    let mut bodies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        statuses.push(status);
        bodies.push(body);
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!((created, ok), (1, 7), "{statuses:?} {bodies:?}");
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "same queue every time"
    );
}

#[tokio::test]
async fn topology_version_strictly_increases_across_changes() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let other = server.create_tenant("globex").await;
    let mut versions = Vec::new();
    let mut record = |what: &str, got: (StatusCode, Value)| {
        assert!(got.0.is_success(), "{what}: {}", got.1);
        let v = got.1["topology_version"]
            .as_i64()
            .unwrap_or_else(|| panic!("{what}: no topology_version in {}", got.1));
        versions.push((what.to_string(), v));
    };
    record(
        "exchange",
        server
            .put("/v1/exchanges/x", &admin, json!({"type": "direct"}))
            .await,
    );
    record("queue", server.put("/v1/queues/q", &admin, json!({})).await);
    record(
        "other tenant",
        server.put("/v1/queues/q", &other, json!({})).await,
    );
    record(
        "binding",
        server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x", "destination": "q"}),
            )
            .await,
    );
    record(
        "stream",
        server
            .put("/v1/streams/s", &admin, json!({"max_message_bytes": 1024}))
            .await,
    );
    let (_, binding) = server.get("/v1/bindings?source=x", &admin).await;
    let binding_id = binding["items"][0]["id"].as_str().unwrap().to_string();
    record(
        "binding delete",
        server
            .delete(&format!("/v1/bindings/{binding_id}"), &admin)
            .await,
    );
    record(
        "stream delete",
        server.delete("/v1/streams/s", &admin).await,
    );
    record("queue delete", server.delete("/v1/queues/q", &admin).await);
    record(
        "exchange delete",
        server.delete("/v1/exchanges/x", &admin).await,
    );
    assert!(
        versions.windows(2).all(|w| w[0].1 < w[1].1),
        "strictly increasing: {versions:?}"
    );

    // A redeclare changes nothing, so it keeps the version it was created at.
    let (_, before) = server.get("/v1/queues/q", &other).await;
    let (status, again) = server.put("/v1/queues/q", &other, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["topology_version"], before["topology_version"]);
    let (_, fresh) = server.put("/v1/queues/q2", &other, json!({})).await;
    assert!(fresh["topology_version"].as_i64().unwrap() > versions.last().unwrap().1);
}

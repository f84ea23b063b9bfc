//! `/v1/bindings`: declares identified by what they match, type-specific fields (topic
//! patterns, header matches, consistent-hash weights), filters, paging and isolation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_invalid, assert_problem};

mod listing;

/// A tenant with one exchange of each type (`x-<type>`) and queues `q1`, `q2`.
pub(super) async fn topology(server: &TestServer) -> String {
    let admin = server.create_tenant("acme").await;
    for kind in ["direct", "fanout", "topic", "headers", "consistent-hash"] {
        let (s, b) = server
            .put(
                &format!("/v1/exchanges/x-{kind}"),
                &admin,
                json!({"type": kind}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    for q in ["q1", "q2"] {
        let (s, _) = server
            .put(&format!("/v1/queues/{q}"), &admin, json!({}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    admin
}

pub(super) fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn declare_is_idempotent_by_what_the_binding_matches() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    let spec = json!({"source": "x-direct", "destination": "q1", "routing_key": "orders"});
    let (status, created) = server.post("/v1/bindings", &admin, spec.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("b_"), "{id}");
    assert_eq!(created["destination_type"], "queue");
    assert_eq!(created["routing_key"], "orders");
    assert!(created["topology_version"].as_i64().unwrap() > 0);

    let (status, again) = server.post("/v1/bindings", &admin, spec).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, created);
    let (status, read) = server.get(&format!("/v1/bindings/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);

    // Another routing key is another binding.
    let (status, other) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-direct", "destination": "q1", "routing_key": "refunds"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(other["id"], created["id"]);
}

#[tokio::test]
async fn topic_binding_keys_follow_the_pattern_rules() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    for (i, key) in ["usa.#", "#", "*.news", "a.*.b", ""].iter().enumerate() {
        let q = if i % 2 == 0 { "q1" } else { "q2" };
        let (status, body) = server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x-topic", "destination": q, "routing_key": key}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}: {body}");
        assert_eq!(body["routing_key"], *key);
    }
    for bad in ["usa#", "a.*b", "**", "a.#x"] {
        let got = server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x-topic", "destination": "q1", "routing_key": bad}),
            )
            .await;
        assert_invalid(&got, "routing_key", "topic-pattern");
    }
    // Other exchange types take any key.
    let (status, _) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-direct", "destination": "q1", "routing_key": "usa#"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_invalid(
        &server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x-direct", "destination": "q1", "routing_key": "k".repeat(256)}),
            )
            .await,
        "routing_key",
        "length",
    );
    let (_, page) = server.get("/v1/bindings", &admin).await;
    assert_eq!(ids(&page).len(), 6);
}

#[tokio::test]
async fn headers_bindings_match_all_or_any() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    let (status, any) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-headers", "destination": "q1",
                   "headers": {"format": "pdf", "pages": 3, "draft": false}, "match": "any"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{any}");
    assert_eq!(any["match"], "any");
    assert_eq!(
        any["headers"],
        json!({"format": "pdf", "pages": 3, "draft": false})
    );

    // `match` defaults to `all`, and `all` spelled out is the same binding.
    let (status, all) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-headers", "destination": "q1", "headers": {"format": "pdf"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{all}");
    assert_eq!(all["match"], "all");
    let (status, same) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-headers", "destination": "q1",
                   "headers": {"format": "pdf"}, "match": "all"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["id"], all["id"]);

    let bad =
        |headers: Value| json!({"source": "x-headers", "destination": "q1", "headers": headers});
    assert_invalid(
        &server
            .post("/v1/bindings", &admin, bad(json!({"a": {"b": 1}})))
            .await,
        "headers.a",
        "type",
    );
    assert_invalid(
        &server
            .post("/v1/bindings", &admin, bad(json!({"a": null})))
            .await,
        "headers.a",
        "type",
    );
    assert_invalid(
        &server
            .post("/v1/bindings", &admin, bad(json!({"": "x"})))
            .await,
        "headers.",
        "length",
    );
    assert_invalid(
        &server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x-headers", "destination": "q1", "match": "some"}),
            )
            .await,
        "match",
        "enum",
    );
    // Header fields belong to headers exchanges only.
    assert_invalid(
        &server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x-topic", "destination": "q1", "headers": {"a": "b"}}),
            )
            .await,
        "headers",
        "exchange-type",
    );
    assert_invalid(
        &server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x-direct", "destination": "q1", "match": "any"}),
            )
            .await,
        "match",
        "exchange-type",
    );
}

#[tokio::test]
async fn consistent_hash_bindings_carry_a_weight() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    let spec = |weight: Value| json!({"source": "x-consistent-hash", "destination": "q1", "routing_key": "", "weight": weight});
    let (status, created) = server.post("/v1/bindings", &admin, spec(json!(5))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["weight"], 5);
    let (status, again) = server.post("/v1/bindings", &admin, spec(json!(5))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], created["id"]);

    // Same binding, another weight: a conflict naming the weight.
    let got = server.post("/v1/bindings", &admin, spec(json!(7))).await;
    assert_problem(&got, StatusCode::CONFLICT, "declare-conflict");
    assert_eq!(got.1["field"], "weight");
    assert_eq!(
        got.1["differences"],
        json!([{"field": "weight", "current": 5, "requested": 7}])
    );
    // Leaving the weight out asks for the default of 1.
    let got = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-consistent-hash", "destination": "q1"}),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "declare-conflict");
    assert_eq!(
        got.1["differences"],
        json!([{"field": "weight", "current": 5, "requested": 1}])
    );
    let (status, default) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-consistent-hash", "destination": "q2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(default["weight"], 1);

    for weight in [0, 1001] {
        let got = server
            .post("/v1/bindings", &admin, spec(json!(weight)))
            .await;
        assert_invalid(&got, "weight", "range");
    }
    assert_invalid(
        &server.post("/v1/bindings", &admin, spec(json!(-1))).await,
        "weight",
        "type",
    );
    let got = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-direct", "destination": "q1", "weight": 2}),
        )
        .await;
    assert_invalid(&got, "weight", "exchange-type");
    let (_, read) = server
        .get(
            &format!("/v1/bindings/{}", created["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(read["weight"], 5);
}

#[tokio::test]
async fn fanout_bindings_ignore_the_routing_key() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    let (status, first) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-fanout", "destination": "q1", "routing_key": "a"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["routing_key"], "");
    let (status, second) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-fanout", "destination": "q1", "routing_key": "b"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["id"], first["id"]);
}

#[tokio::test]
async fn binding_references_are_checked() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    let post = |body: Value| server.post("/v1/bindings", &admin, body);
    assert_invalid(
        &post(json!({"source": "default", "destination": "q1", "routing_key": "q1"})).await,
        "source",
        "reserved",
    );
    assert_invalid(
        &post(json!({"source": "x-direct", "destination": "nosuch"})).await,
        "destination",
        "must-exist",
    );
    assert_invalid(
        &post(json!({"source": "nosuch", "destination": "q1"})).await,
        "source",
        "must-exist",
    );
    // A queue is not an exchange.
    assert_invalid(
        &post(json!({"source": "x-direct", "destination_type": "exchange", "destination": "q1"}))
            .await,
        "destination",
        "must-exist",
    );
    assert_invalid(
        &post(json!({"source": "x-direct", "destination_type": "stream", "destination": "q1"}))
            .await,
        "destination_type",
        "enum",
    );
    assert_invalid(
        &post(json!({"source": "x-direct"})).await,
        "destination",
        "required",
    );
    assert_invalid(
        &post(json!({"destination": "q1"})).await,
        "source",
        "required",
    );
    assert_invalid(
        &post(json!({"source": "x-direct", "destination": "q 1"})).await,
        "destination",
        "charset",
    );
    assert_invalid(
        &post(json!({"source": "x-direct", "destination": "q1", "arguments": {}})).await,
        "arguments",
        "unknown-field",
    );
    let (_, page) = server.get("/v1/bindings", &admin).await;
    assert_eq!(page["items"], json!([]), "nothing was declared");
}

#[tokio::test]
async fn exchange_to_exchange_bindings() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    let (status, e2e) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x-topic", "destination_type": "exchange",
                   "destination": "x-fanout", "routing_key": "audit.#"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e2e}");
    assert_eq!(e2e["destination_type"], "exchange");
    assert_eq!(e2e["destination"], "x-fanout");
    // The same names with a queue destination would be another binding; here the
    // destination queue does not exist.
    assert_invalid(
        &server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": "x-topic", "destination": "x-fanout", "routing_key": "audit.#"}),
            )
            .await,
        "destination",
        "must-exist",
    );
    let (_, page) = server
        .get("/v1/bindings?destination=x-fanout", &admin)
        .await;
    assert_eq!(ids(&page), [e2e["id"].as_str().unwrap()]);
}

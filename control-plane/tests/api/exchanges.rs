//! `/v1/exchanges`: idempotent declares and their conflicts, every exchange type, the
//! alternate exchange, deletes that are refused while the exchange is referenced.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_invalid, assert_problem, names};

/// The declared settings of an exchange read back, without its bookkeeping fields.
fn settings(exchange: &Value) -> Value {
    let mut v = exchange.clone();
    let obj = v.as_object_mut().unwrap();
    for bookkeeping in ["name", "topology_version", "created_at"] {
        assert!(
            obj.remove(bookkeeping).is_some(),
            "{bookkeeping} in {exchange}"
        );
    }
    v
}

#[tokio::test]
async fn declare_is_idempotent_and_reads_back() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, first) = server
        .put("/v1/exchanges/orders", &admin, json!({"type": "topic"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["name"], "orders");
    assert_eq!(
        settings(&first),
        json!({"type": "topic", "durable": true, "internal": false,
               "alternate_exchange": null, "hash_header": null})
    );
    // The same settings, spelled out or left to defaults: 200 and the same body.
    let (status, again) = server
        .put("/v1/exchanges/orders", &admin, json!({"type": "topic"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    let (status, again) = server
        .put(
            "/v1/exchanges/orders",
            &admin,
            json!({"type": "topic", "durable": true, "internal": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    let (status, read) = server.get("/v1/exchanges/orders", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, first);
}

#[tokio::test]
async fn redeclare_with_other_settings_is_a_conflict_naming_each_field() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, _) = server
        .put("/v1/exchanges/orders", &admin, json!({"type": "direct"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let got = server
        .put("/v1/exchanges/orders", &admin, json!({"type": "fanout"}))
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "declare-conflict");
    assert_eq!(got.1["field"], "type");
    assert_eq!(
        got.1["differences"],
        json!([{"field": "type", "current": "direct", "requested": "fanout"}])
    );

    let got = server
        .put(
            "/v1/exchanges/orders",
            &admin,
            json!({"type": "fanout", "durable": false}),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "declare-conflict");
    let mut differences = got.1["differences"].as_array().unwrap().clone();
    differences.sort_by_key(|d| d["field"].as_str().unwrap().to_string());
    assert_eq!(
        differences,
        [
            json!({"field": "durable", "current": true, "requested": false}),
            json!({"field": "type", "current": "direct", "requested": "fanout"}),
        ]
    );
    assert!(
        differences.iter().any(|d| d["field"] == got.1["field"]),
        "`field` names one of the differences: {}",
        got.1
    );
    // Unchanged.
    let (_, read) = server.get("/v1/exchanges/orders", &admin).await;
    assert_eq!(read["type"], "direct");
    assert_eq!(read["durable"], true);
}

#[tokio::test]
async fn every_exchange_type_can_be_declared() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let types = ["direct", "fanout", "topic", "headers", "consistent-hash"];
    for kind in types {
        let (status, body) = server
            .put(
                &format!("/v1/exchanges/x-{kind}"),
                &admin,
                json!({"type": kind}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{kind}: {body}");
        assert_eq!(body["type"], kind);
    }
    let (status, page) = server.get("/v1/exchanges", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let mut want: Vec<String> = types.iter().map(|t| format!("x-{t}")).collect();
    want.sort();
    assert_eq!(names(&page), want);
}

#[tokio::test]
async fn exchange_declare_validates() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (server, admin) = (&server, &admin);
    let put = move |name: &str, body: Value| {
        let path = format!("/v1/exchanges/{name}");
        async move { server.put(&path, admin, body).await }
    };
    let direct = json!({"type": "direct"});
    assert_invalid(
        &put("x", json!({"type": "round-robin"})).await,
        "type",
        "enum",
    );
    assert_invalid(&put("x", json!({})).await, "type", "required");
    assert_invalid(
        &put("x", json!({"type": "direct", "durable": "yes"})).await,
        "durable",
        "type",
    );
    assert_invalid(
        &put("x", json!({"type": "direct", "auto_delete": true})).await,
        "auto_delete",
        "unknown-field",
    );
    assert_invalid(&put("-x", direct.clone()).await, "name", "charset");
    assert_invalid(&put("a%20b", direct.clone()).await, "name", "charset");
    assert_invalid(
        &put(&"x".repeat(129), direct.clone()).await,
        "name",
        "length",
    );
    for reserved in ["default", "amq.direct", "sluice.internal"] {
        assert_invalid(&put(reserved, direct.clone()).await, "name", "reserved");
    }
    assert_invalid(
        &put("x", json!({"type": "direct", "hash_header": "h"})).await,
        "hash_header",
        "exchange-type",
    );
    assert_invalid(
        &put("x", json!({"type": "consistent-hash", "hash_header": ""})).await,
        "hash_header",
        "length",
    );
    assert_invalid(
        &put(
            "x",
            json!({"type": "direct", "alternate_exchange": "nosuch"}),
        )
        .await,
        "alternate_exchange",
        "must-exist",
    );
    assert_invalid(
        &put("x", json!({"type": "direct", "alternate_exchange": "x"})).await,
        "alternate_exchange",
        "not-self",
    );
    assert_invalid(
        &put(
            "x",
            json!({"type": "direct", "alternate_exchange": "bad name"}),
        )
        .await,
        "alternate_exchange",
        "charset",
    );
    let (_, page) = server.get("/v1/exchanges", admin).await;
    assert_eq!(page["items"], json!([]), "nothing was declared");

    // The valid forms of the same fields.
    let (status, body) = put(
        "ch",
        json!({"type": "consistent-hash", "hash_header": "user-id"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["hash_header"], "user-id");
    let (status, body) = put(
        "main",
        json!({"type": "direct", "alternate_exchange": "ch", "internal": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["alternate_exchange"], "ch");
    assert_eq!(body["internal"], true);
}

#[tokio::test]
async fn only_manage_keys_declare_and_delete() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let publisher = server.create_key(&admin, &["publish"]).await;
    let manage = server.create_key(&admin, &["manage"]).await;
    let got = server
        .put("/v1/exchanges/x", &publisher, json!({"type": "direct"}))
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = server
        .put("/v1/exchanges/x", &manage, json!({"type": "direct"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Reads need no particular scope.
    assert_eq!(
        server.get("/v1/exchanges/x", &publisher).await.0,
        StatusCode::OK
    );
    let got = server.delete("/v1/exchanges/x", &publisher).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = server.get("/v1/exchanges", server.op_key()).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        server.get("/v1/exchanges/x", &manage).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn another_tenants_exchange_is_not_found() {
    let server = TestServer::start().await;
    let acme = server.create_tenant("acme").await;
    let globex = server.create_tenant("globex").await;
    let (status, _) = server
        .put("/v1/exchanges/x", &acme, json!({"type": "direct"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_problem(
        &server.get("/v1/exchanges/x", &globex).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete("/v1/exchanges/x", &globex).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let (_, page) = server.get("/v1/exchanges", &globex).await;
    assert_eq!(page["items"], json!([]));
    // The same name is free in the other tenant, with other settings.
    let (status, _) = server
        .put("/v1/exchanges/x", &globex, json!({"type": "fanout"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, read) = server.get("/v1/exchanges/x", &acme).await;
    assert_eq!(read["type"], "direct");
}

#[tokio::test]
async fn referenced_exchange_cannot_be_deleted() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    for (name, body) in [
        ("dlx", json!({"type": "fanout"})),
        ("ae", json!({"type": "fanout"})),
        (
            "main",
            json!({"type": "direct", "alternate_exchange": "ae"}),
        ),
    ] {
        let (status, b) = server
            .put(&format!("/v1/exchanges/{name}"), &admin, body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
    }
    let (status, _) = server
        .put(
            "/v1/queues/work",
            &admin,
            json!({"dead_letter_exchange": "dlx"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let got = server.delete("/v1/exchanges/dlx", &admin).await;
    assert_problem(&got, StatusCode::CONFLICT, "in-use");
    assert!(
        got.1["detail"].as_str().unwrap().contains("work"),
        "{}",
        got.1
    );
    let got = server.delete("/v1/exchanges/ae", &admin).await;
    assert_problem(&got, StatusCode::CONFLICT, "in-use");
    assert!(
        got.1["detail"].as_str().unwrap().contains("main"),
        "{}",
        got.1
    );
    assert_eq!(
        server.get("/v1/exchanges/dlx", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.get("/v1/exchanges/ae", &admin).await.0,
        StatusCode::OK
    );

    // Once the referrers are gone, so can they be.
    assert_eq!(
        server.delete("/v1/queues/work", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.delete("/v1/exchanges/main", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.delete("/v1/exchanges/dlx", &admin).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.delete("/v1/exchanges/ae", &admin).await.0,
        StatusCode::OK
    );
    assert_problem(
        &server.get("/v1/exchanges/ae", &admin).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete("/v1/exchanges/ae", &admin).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
}

#[tokio::test]
async fn delete_removes_bindings_from_and_to_the_exchange() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    for name in ["src", "hub", "other"] {
        let (s, _) = server
            .put(
                &format!("/v1/exchanges/{name}"),
                &admin,
                json!({"type": "direct"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, _) = server.put("/v1/queues/q", &admin, json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    let bindings = [
        json!({"source": "hub", "destination": "q", "routing_key": "a"}),
        json!({"source": "src", "destination_type": "exchange", "destination": "hub", "routing_key": "b"}),
        json!({"source": "other", "destination": "q", "routing_key": "c"}),
    ];
    for b in &bindings {
        let (s, body) = server.post("/v1/bindings", &admin, b.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }

    let got = server
        .delete("/v1/exchanges/hub?if_unused=true", &admin)
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "in-use");
    let (_, page) = server.get("/v1/bindings", &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_invalid(
        &server
            .delete("/v1/exchanges/hub?if_unused=maybe", &admin)
            .await,
        "if_unused",
        "type",
    );

    let (status, deleted) = server.delete("/v1/exchanges/hub", &admin).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["name"], "hub");
    assert_eq!(deleted["bindings_removed"], 2);
    let (_, page) = server.get("/v1/bindings", &admin).await;
    let left: Vec<&Value> = page["items"].as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 1, "{page}");
    assert_eq!(left[0]["source"], "other");

    // if_unused passes for an exchange nothing routes from.
    let (status, deleted) = server
        .delete("/v1/exchanges/src?if_unused=true", &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["bindings_removed"], 0);
}

#[tokio::test]
async fn exchanges_list_pages_in_name_order() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    for name in ["c", "a", "b"] {
        let (s, _) = server
            .put(
                &format!("/v1/exchanges/{name}"),
                &admin,
                json!({"type": "direct"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, page) = server.get("/v1/exchanges?limit=2", &admin).await;
    assert_eq!(names(&page), ["a", "b"]);
    let (_, page) = server
        .get(
            &format!(
                "/v1/exchanges?limit=2&after={}",
                page["next"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert_eq!(names(&page), ["c"]);
    assert!(page.get("next").is_none());
    assert_invalid(
        &server.get("/v1/exchanges?limit=0", &admin).await,
        "limit",
        "range",
    );
}

#[tokio::test]
async fn wrong_json_type_for_an_enum_is_a_validation_error() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let got = server
        .put("/v1/exchanges/x", &admin, json!({"type": 3}))
        .await;
    assert_invalid(&got, "type", "type");
}

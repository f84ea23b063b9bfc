//! `/v1/tenants`: create, list (paged), read, suspend, resume and delete; operator only.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, assert_invalid, assert_problem, names};

#[tokio::test]
async fn operator_creates_a_tenant_with_a_working_admin_key() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post(
            "/v1/tenants",
            server.op_key(),
            json!({ "name": "acme", "plan": "standard" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["tenant"]["name"], "acme");
    assert_eq!(body["tenant"]["plan"], "standard");
    assert_eq!(body["tenant"]["status"], "active");
    assert_eq!(body["admin_key"]["scopes"], json!(["admin"]));
    assert_eq!(body["admin_key"]["status"], "active");
    assert_eq!(body["admin_key"]["created_by"], "operator");
    let key = body["admin_key"]["key"].as_str().unwrap();
    let id = body["admin_key"]["id"].as_str().unwrap();
    assert!(key.starts_with(&format!("sk_{id}_")), "{key}");

    // The key works, and its tenant reads itself.
    let (status, tenant) = server.get("/v1/tenants/acme", key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenant, body["tenant"]);
}

#[tokio::test]
async fn plan_defaults_to_free() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post("/v1/tenants", server.op_key(), json!({ "name": "acme" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["tenant"]["plan"], "free");
}

#[tokio::test]
async fn tenant_creation_validates_its_body() {
    let server = TestServer::start().await;
    let op = server.op_key();
    for bad in ["a", "Acme", "2acme", "acme-", "ac_me", &"a".repeat(64)] {
        let got = server.post("/v1/tenants", op, json!({ "name": bad })).await;
        assert_invalid(&got, "name", "charset");
    }
    let got = server
        .post("/v1/tenants", op, json!({ "name": "acme", "plan": "gold" }))
        .await;
    assert_invalid(&got, "plan", "enum");
    let got = server
        .post("/v1/tenants", op, json!({ "name": "acme", "region": "eu" }))
        .await;
    assert_invalid(&got, "region", "unknown-field");
    let got = server.post("/v1/tenants", op, json!({ "name": 7 })).await;
    assert_invalid(&got, "name", "type");
    let got = server.post("/v1/tenants", op, json!({})).await;
    assert_invalid(&got, "name", "required");
    let got = server.post("/v1/tenants", op, json!("acme")).await;
    assert_invalid(&got, "body", "type");
    // None of those created anything.
    let (_, page) = server.get("/v1/tenants", op).await;
    assert_eq!(names(&page), Vec::<String>::new());
}

#[tokio::test]
async fn malformed_json_and_missing_content_type_are_refused() {
    let server = TestServer::start().await;
    let op = Some(server.op_key());
    for body in [&b"{"[..], b"{\"name\": }", b"not json", b"{} {}"] {
        let got = server
            .raw(
                Method::POST,
                "/v1/tenants",
                op,
                Some("application/json"),
                Some(body.to_vec()),
            )
            .await;
        assert_problem(&got, StatusCode::BAD_REQUEST, "malformed-json");
    }
    let valid = br#"{"name":"acme"}"#.to_vec();
    let got = server
        .raw(Method::POST, "/v1/tenants", op, None, Some(valid.clone()))
        .await;
    assert_problem(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    );
    let got = server
        .raw(
            Method::POST,
            "/v1/tenants",
            op,
            Some("text/plain"),
            Some(valid.clone()),
        )
        .await;
    assert_problem(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    );
    // With parameters and the +json suffix, the same body is accepted.
    let got = server
        .raw(
            Method::POST,
            "/v1/tenants",
            op,
            Some("application/json; charset=utf-8"),
            Some(valid),
        )
        .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
}

/// The JSON body rule both planes share (`sluice_protocol::json_body`): a
/// key given twice is refused naming it, wherever it is — the parser would
/// otherwise keep one of the two silently — and an empty body is `{}`,
/// whatever its `Content-Type`.
#[tokio::test]
async fn a_key_given_twice_is_refused_and_an_empty_body_is_an_empty_object() {
    let server = TestServer::start().await;
    let op = server.op_key().to_string();
    let admin = server.create_tenant("acme").await;
    let cases: [(Method, &str, &str, &str, &str); 4] = [
        (
            Method::POST,
            "/v1/tenants",
            op.as_str(),
            r#"{"name":"a","name":"b"}"#,
            "name",
        ),
        (
            Method::PUT,
            "/v1/queues/q",
            admin.as_str(),
            r#"{"max_length":1,"max_length":2}"#,
            "max_length",
        ),
        (
            Method::POST,
            "/v1/bindings",
            admin.as_str(),
            r#"{"source":"x","destination":"q","headers":{"h":1,"h":1}}"#,
            "headers.h",
        ),
        (
            Method::POST,
            "/v1/api-keys",
            admin.as_str(),
            r#"{"name":"k","scopes":["manage"],"name":"k"}"#,
            "name",
        ),
    ];
    for (method, path, key, body, field) in cases {
        let got = server
            .raw(
                method,
                path,
                Some(key),
                Some("application/json"),
                Some(body.as_bytes().to_vec()),
            )
            .await;
        assert_invalid(&got, field, "duplicate-key");
    }
    let (_, page) = server.get("/v1/tenants", &op).await;
    assert_eq!(
        names(&page),
        vec!["acme".to_string()],
        "nothing was created"
    );

    // An empty body, with or without a type, declares with the defaults.
    for (content_type, name) in [(None, "q1"), (Some("application/json"), "q2")] {
        let got = server
            .raw(
                Method::PUT,
                &format!("/v1/queues/{name}"),
                Some(admin.as_str()),
                content_type,
                None,
            )
            .await;
        assert!(got.0.is_success(), "{content_type:?}: {}", got.1);
    }
    // An empty body is `{}`: a tenant still needs its name.
    let got = server
        .raw(
            Method::POST,
            "/v1/tenants",
            Some(op.as_str()),
            None,
            Some(Vec::new()),
        )
        .await;
    assert_invalid(&got, "name", "required");
}

#[tokio::test]
async fn duplicate_tenant_name_is_a_conflict() {
    let server = TestServer::start().await;
    server.create_tenant("acme").await;
    let got = server
        .post("/v1/tenants", server.op_key(), json!({ "name": "acme" }))
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "already-exists");
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let got = server.request(Method::GET, "/v1/tenants", None, None).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    for bad in ["sk_nosuchkey_secret", "garbage", "sk_operator_wrong"] {
        let got = server.get("/v1/tenants/acme", bad).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // A real key id with a wrong secret.
    let id = admin.split('_').nth(1).unwrap();
    let got = server
        .get("/v1/tenants/acme", &format!("sk_{id}_wrong"))
        .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    // Not a bearer credential.
    let response = reqwest::Client::new()
        .get(server.url("/v1/tenants/acme"))
        .header("authorization", format!("Basic {admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn tenant_keys_cannot_use_operator_endpoints() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let got = server
        .post("/v1/tenants", &admin, json!({ "name": "other" }))
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = server.get("/v1/tenants", &admin).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    for action in ["suspend", "resume"] {
        let got = server
            .request(
                Method::POST,
                &format!("/v1/tenants/acme/{action}"),
                Some(&admin),
                None,
            )
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let got = server.delete("/v1/tenants/acme", &admin).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // Nothing happened.
    let (_, tenant) = server.get("/v1/tenants/acme", &admin).await;
    assert_eq!(tenant["status"], "active");
}

#[tokio::test]
async fn another_tenants_key_sees_no_tenant() {
    let server = TestServer::start().await;
    server.create_tenant("acme").await;
    let other = server.create_tenant("globex").await;
    let got = server.get("/v1/tenants/acme", &other).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    let got = server.get("/v1/tenants/nosuch", server.op_key()).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    let got = server.delete("/v1/tenants/nosuch", server.op_key()).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn tenants_list_in_name_order_one_page_at_a_time() {
    let server = TestServer::start().await;
    let op = server.op_key();
    let created = ["delta", "alpha", "echo", "charlie", "bravo"];
    for name in created {
        server.create_tenant(name).await;
    }
    let (status, page) = server.get("/v1/tenants?limit=2", op).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&page), ["alpha", "bravo"]);
    assert_eq!(page["next"], "bravo");
    let (_, page) = server.get("/v1/tenants?limit=2&after=bravo", op).await;
    assert_eq!(names(&page), ["charlie", "delta"]);
    assert_eq!(page["next"], "delta");
    let (_, page) = server.get("/v1/tenants?limit=2&after=delta", op).await;
    assert_eq!(names(&page), ["echo"]);
    assert!(page.get("next").is_none(), "last page has no next: {page}");
    let (_, page) = server.get("/v1/tenants", op).await;
    assert_eq!(names(&page).len(), created.len());
    assert!(page.get("next").is_none());

    assert_invalid(
        &server.get("/v1/tenants?limit=0", op).await,
        "limit",
        "range",
    );
    assert_invalid(
        &server.get("/v1/tenants?limit=1001", op).await,
        "limit",
        "range",
    );
    assert_invalid(
        &server.get("/v1/tenants?limit=ten", op).await,
        "limit",
        "type",
    );
    assert_invalid(
        &server.get("/v1/tenants?colour=red", op).await,
        "colour",
        "unknown-field",
    );
}

#[tokio::test]
async fn suspended_tenant_is_refused_until_resumed() {
    let server = TestServer::start().await;
    let op = server.op_key();
    let admin = server.create_tenant("acme").await;
    let manage = server.create_key(&admin, &["manage"]).await;
    let other = server.create_tenant("globex").await;

    let (status, body) = server
        .request(Method::POST, "/v1/tenants/acme/suspend", Some(op), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "suspended");
    for key in [&admin, &manage] {
        let got = server.get("/v1/queues", key).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "tenant-suspended");
        let got = server.put("/v1/queues/q", key, json!({})).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "tenant-suspended");
    }
    // Other tenants are unaffected; the operator still sees the tenant.
    assert_eq!(server.get("/v1/queues", &other).await.0, StatusCode::OK);
    let (_, tenant) = server.get("/v1/tenants/acme", op).await;
    assert_eq!(tenant["status"], "suspended");

    let (status, body) = server
        .request(Method::POST, "/v1/tenants/acme/resume", Some(op), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "active");
    let (status, _) = server.put("/v1/queues/q", &manage, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_keys_and_resources() {
    let server = TestServer::start().await;
    let op = server.op_key();
    let admin = server.create_tenant("acme").await;
    let manage = server.create_key(&admin, &["manage"]).await;
    let other = server.create_tenant("globex").await;
    for key in [&admin, &other] {
        let (s, _) = server
            .put("/v1/exchanges/x", key, json!({"type": "direct"}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _) = server.put("/v1/queues/q", key, json!({})).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _) = server
            .post(
                "/v1/bindings",
                key,
                json!({"source": "x", "destination": "q", "routing_key": "k"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // An alternate exchange and a dead-letter exchange inside the tenant must not block it.
    let (s, _) = server
        .put(
            "/v1/exchanges/x2",
            &admin,
            json!({"type": "fanout", "alternate_exchange": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = server
        .put(
            "/v1/queues/q2",
            &admin,
            json!({"dead_letter_exchange": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = server
        .put("/v1/streams/s", &admin, json!({"max_message_bytes": 1024}))
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let (status, body) = server.delete("/v1/tenants/acme", op).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "acme");
    assert_eq!(body["bindings_removed"], 1);
    assert!(body["topology_version"].as_i64().unwrap() > 0, "{body}");

    for key in [&admin, &manage] {
        let got = server.get("/v1/queues", key).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let got = server.get("/v1/tenants/acme", op).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    let (_, page) = server.get("/v1/tenants", op).await;
    assert_eq!(names(&page), ["globex"]);

    // A new tenant of the same name starts empty.
    let fresh = server.create_tenant("acme").await;
    for path in ["/v1/exchanges", "/v1/queues", "/v1/streams", "/v1/bindings"] {
        let (status, page) = server.get(path, &fresh).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["items"], json!([]), "{path} of the new tenant");
    }
    let (_, keys) = server.get("/v1/api-keys", &fresh).await;
    assert_eq!(keys["items"].as_array().unwrap().len(), 1, "{keys}");
    let (_, usage) = server.get("/v1/tenants/acme/quotas", &fresh).await;
    assert_eq!(
        usage["usage"],
        json!({"queues": 0, "exchanges": 0, "bindings": 0, "streams": 0, "partitions": 0, "api_keys": 1, "storage_bytes": 0})
    );
    // The other tenant keeps everything.
    let (_, page) = server.get("/v1/bindings", &other).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page): (StatusCode, Value) = server.get("/v1/queues", &other).await;
    assert_eq!(names(&page), ["q"]);
}

#[tokio::test]
async fn array_body_is_not_a_tenant() {
    let server = TestServer::start().await;
    let got = server
        .post("/v1/tenants", server.op_key(), json!(["acme", "free"]))
        .await;
    assert_invalid(&got, "body", "type");
}

#[tokio::test]
async fn oversized_body_is_payload_too_large() {
    let server = TestServer::start().await;
    let name = "a".repeat(2 << 20);
    let got = server
        .post("/v1/tenants", server.op_key(), json!({ "name": name }))
        .await;
    assert_eq!(got.0, StatusCode::PAYLOAD_TOO_LARGE, "{}", got.1);
    assert!(
        got.1["type"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://sluice.dev/problems/")
    );
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    for scheme in ["bearer", "BEARER"] {
        let response = reqwest::Client::new()
            .get(server.url("/v1/tenants/acme"))
            .header("authorization", format!("{scheme} {admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
}

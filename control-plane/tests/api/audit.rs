//! `GET /v1/audit-log`: every mutation recorded once, newest first; tenants see only
//! their own entries, operators everything or one tenant.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, assert_invalid, assert_problem};

fn actions(page: &Value) -> Vec<String> {
    entries(page)
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

fn entries(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
}

/// A tenant `name` with one of each resource, one redeclare and one failed declare.
async fn busy_tenant(server: &TestServer, name: &str) -> String {
    let admin = server.create_tenant(name).await;
    let publisher = server.create_key(&admin, &["publish"]).await;
    let ok = |got: (StatusCode, Value)| {
        assert!(got.0.is_success(), "{}", got.1);
        got
    };
    ok(server
        .put("/v1/exchanges/x", &admin, json!({"type": "direct"}))
        .await);
    ok(server.put("/v1/queues/q", &admin, json!({})).await);
    // Neither a redeclare nor a refused declare is a change.
    ok(server.put("/v1/queues/q", &admin, json!({})).await);
    let conflict = server
        .put("/v1/queues/q", &admin, json!({"max_length": 1}))
        .await;
    assert_eq!(conflict.0, StatusCode::CONFLICT);
    ok(server
        .post(
            "/v1/bindings",
            &admin,
            json!({"source": "x", "destination": "q"}),
        )
        .await);
    ok(server
        .put("/v1/streams/s", &admin, json!({"max_message_bytes": 1024}))
        .await);
    ok(server.delete("/v1/queues/q", &admin).await);
    let id = publisher.split('_').nth(1).unwrap();
    ok(server.delete(&format!("/v1/api-keys/{id}"), &admin).await);
    admin
}

const BUSY_ACTIONS: [&str; 8] = [
    "api_key.revoke",
    "queue.delete",
    "stream.declare",
    "binding.declare",
    "queue.declare",
    "exchange.declare",
    "api_key.create",
    "tenant.create",
];

#[tokio::test]
async fn admin_sees_its_tenants_mutations_newest_first() {
    let server = TestServer::start().await;
    let admin = busy_tenant(&server, "acme").await;
    let (status, page) = server.get("/v1/audit-log", &admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(actions(&page), BUSY_ACTIONS);
    let admin_actor = format!("key:{}", admin.split('_').nth(1).unwrap());
    for entry in entries(&page) {
        assert_eq!(entry["tenant"], "acme");
        let want_actor = if entry["action"] == "tenant.create" {
            "operator"
        } else {
            admin_actor.as_str()
        };
        assert_eq!(entry["actor"], want_actor, "{entry}");
    }
    let declare = entries(&page)
        .iter()
        .find(|e| e["action"] == "queue.declare")
        .unwrap();
    assert_eq!(declare["resource"], "q");
    // The declared settings are recorded (wherever the details keep them).
    let details = declare["details"].to_string();
    assert!(details.contains(r#""lease_ms":30000"#), "{details}");
    let ids: Vec<i64> = entries(&page)
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
}

#[tokio::test]
async fn only_admin_keys_and_the_operator_read_the_log() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    for scopes in [&["manage"][..], &["publish", "consume"]] {
        let key = server.create_key(&admin, scopes).await;
        let got = server.get("/v1/audit-log", &key).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let got = server
        .request(Method::GET, "/v1/audit-log", None, None)
        .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    // A tenant key may name its own tenant, no other.
    let (status, own) = server.get("/v1/audit-log?tenant=acme", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!entries(&own).is_empty());
    server.create_tenant("globex").await;
    let got = server.get("/v1/audit-log?tenant=globex", &admin).await;
    assert_invalid(&got, "tenant", "operator-only");
    assert_invalid(
        &server.get("/v1/audit-log?limit=0", &admin).await,
        "limit",
        "range",
    );
    assert_invalid(
        &server.get("/v1/audit-log?after=x", &admin).await,
        "after",
        "type",
    );
    assert_invalid(
        &server.get("/v1/audit-log?action=x", &admin).await,
        "action",
        "unknown-field",
    );
}

#[tokio::test]
async fn tenants_never_see_each_others_entries_and_operators_filter() {
    let server = TestServer::start().await;
    let acme = busy_tenant(&server, "acme").await;
    let globex = busy_tenant(&server, "globex").await;
    let op = server.op_key();
    server.set_quotas("globex", json!({"max_queues": 3})).await;

    let (_, page) = server.get("/v1/audit-log", &acme).await;
    assert_eq!(actions(&page), BUSY_ACTIONS);
    assert!(entries(&page).iter().all(|e| e["tenant"] == "acme"));
    let (_, page) = server.get("/v1/audit-log", &globex).await;
    assert_eq!(actions(&page)[0], "quota.update");
    assert_eq!(actions(&page)[1..], BUSY_ACTIONS);
    assert!(entries(&page).iter().all(|e| e["tenant"] == "globex"));
    let quota = &entries(&page)[0];
    assert_eq!(quota["actor"], "operator");
    assert_eq!(quota["details"]["max_queues"], 3);

    let (status, all) = server.get("/v1/audit-log", op).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entries(&all).len(), 2 * BUSY_ACTIONS.len() + 1);
    let (_, only_acme) = server.get("/v1/audit-log?tenant=acme", op).await;
    assert_eq!(actions(&only_acme), BUSY_ACTIONS);
    assert!(entries(&only_acme).iter().all(|e| e["tenant"] == "acme"));
    let (_, nobody) = server.get("/v1/audit-log?tenant=nosuch", op).await;
    assert_eq!(entries(&nobody).len(), 0);

    // A deleted tenant's history stays readable by the operator.
    let (status, _) = server.delete("/v1/tenants/acme", op).await;
    assert_eq!(status, StatusCode::OK);
    let (_, only_acme) = server.get("/v1/audit-log?tenant=acme", op).await;
    assert_eq!(actions(&only_acme)[0], "tenant.delete");
    assert_eq!(actions(&only_acme)[1..], BUSY_ACTIONS);
    // A new tenant of the same name does not inherit it.
    let fresh = server.create_tenant("acme").await;
    let (_, page) = server.get("/v1/audit-log", &fresh).await;
    assert_eq!(actions(&page), ["tenant.create"]);
}

#[tokio::test]
async fn audit_log_pages_backwards_without_repeats() {
    let server = TestServer::start().await;
    let admin = busy_tenant(&server, "acme").await;
    let mut seen = Vec::new();
    let mut path = "/v1/audit-log?limit=3".to_string();
    loop {
        let (status, page) = server.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(entries(&page).len() <= 3);
        seen.extend(actions(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/audit-log?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, BUSY_ACTIONS);
}

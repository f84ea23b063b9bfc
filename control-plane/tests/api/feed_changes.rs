//! The feed's changes (`changes=true`): what a broker at version V is sent instead of a
//! whole snapshot. The property that matters: the snapshot at V with the changes
//! applied is the snapshot at the changes' version, for every kind of change they carry;
//! and what they cannot carry (tenants, quotas, brokers) comes as a snapshot.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestServer;

/// The feed's answer to a broker at `since` (with changes). It waits a little: the
/// feed learns of a commit through Postgres `NOTIFY` a moment after it answered.
async fn update(server: &TestServer, since: i64) -> Value {
    let (status, body) = server
        .get(
            &format!("/internal/v1/feed?since={since}&wait_ms=5000&changes=true"),
            server.node_key(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "feed since {since}: {body}");
    body
}

/// The whole snapshot now.
async fn snapshot(server: &TestServer) -> Value {
    let update = update(server, -1).await;
    update["snapshot"].clone()
}

/// A snapshot's parts a broker keeps, keyed as brokers key them.
type Parts = BTreeMap<&'static str, BTreeMap<String, Value>>;

fn keyed(snapshot: &Value) -> Parts {
    let mut parts = Parts::new();
    let by = |list: &Value, key: &dyn Fn(&Value) -> String| -> BTreeMap<String, Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|item| (key(item), item.clone()))
            .collect()
    };
    let named = |v: &Value| format!("{}/{}", v["tenant_id"], v["name"]);
    parts.insert("queues", by(&snapshot["queues"], &named));
    parts.insert("streams", by(&snapshot["streams"], &named));
    parts.insert("exchanges", by(&snapshot["exchanges"], &named));
    parts.insert(
        "bindings",
        by(&snapshot["bindings"], &|v| {
            format!("{}/{}", v["tenant_id"], v["id"])
        }),
    );
    parts.insert(
        "api_keys",
        by(&snapshot["api_keys"], &|v| {
            v["id"].as_str().unwrap_or_default().to_string()
        }),
    );
    parts
}

/// What a broker does with changes, on the JSON: replace what they name.
fn apply(parts: &mut Parts, changes: &Value) {
    let named = |v: &Value| format!("{}/{}", v["tenant_id"], v["name"]);
    for (kind, removed) in [("queues", "queues_removed"), ("streams", "streams_removed")] {
        let map = parts.get_mut(kind).expect(kind);
        for gone in changes[removed].as_array().into_iter().flatten() {
            map.remove(&named(gone));
        }
        for item in changes[kind].as_array().into_iter().flatten() {
            map.insert(named(item), item.clone());
        }
    }
    let keys = parts.get_mut("api_keys").expect("keys");
    for gone in changes["api_keys_removed"].as_array().into_iter().flatten() {
        keys.remove(gone.as_str().unwrap_or_default());
    }
    for key in changes["api_keys"].as_array().into_iter().flatten() {
        keys.insert(
            key["id"].as_str().unwrap_or_default().to_string(),
            key.clone(),
        );
    }
    for routing in changes["routing"].as_array().into_iter().flatten() {
        let tenant = routing["tenant_id"].to_string();
        let prefix = format!("{tenant}/");
        for kind in ["exchanges", "bindings"] {
            let map = parts.get_mut(kind).expect(kind);
            map.retain(|k, _| !k.starts_with(&prefix));
        }
        for x in routing["exchanges"].as_array().into_iter().flatten() {
            parts
                .get_mut("exchanges")
                .expect("x")
                .insert(named(x), x.clone());
        }
        for b in routing["bindings"].as_array().into_iter().flatten() {
            let key = format!("{}/{}", b["tenant_id"], b["id"]);
            parts.get_mut("bindings").expect("b").insert(key, b.clone());
        }
    }
}

/// Asks for the changes since `base`, applies them to it, and checks the result
/// against a fresh snapshot; returns the fresh snapshot.
async fn changes_match_snapshot(server: &TestServer, base: &Value, what: &str) -> Value {
    let since = base["version"].as_i64().expect("version");
    let answer = update(server, since).await;
    let changes = answer
        .get("changes")
        .unwrap_or_else(|| panic!("{what}: changes expected, got {answer}"));
    assert_eq!(changes["since"], since, "{what}");
    let now = snapshot(server).await;
    assert_eq!(
        changes["version"], now["version"],
        "{what}: nothing else changed"
    );
    let mut parts = keyed(base);
    apply(&mut parts, changes);
    assert_eq!(parts, keyed(&now), "{what}: {changes}");
    now
}

#[tokio::test]
async fn changes_applied_to_the_old_snapshot_give_the_new_one() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let other = server.create_tenant("other").await;
    let base = snapshot(&server).await;

    for (path, body) in [
        ("/v1/exchanges/orders", json!({ "type": "topic" })),
        ("/v1/queues/jobs", json!({ "max_length": 10 })),
        ("/v1/queues/audit", json!({})),
    ] {
        let (status, body) = server.put(path, &admin, body).await;
        assert!(status.is_success(), "{path}: {body}");
    }
    let (status, body) = server
        .post(
            "/v1/bindings",
            &admin,
            json!({ "source": "orders", "destination": "jobs", "routing_key": "order.*" }),
        )
        .await;
    assert!(status.is_success(), "binding: {body}");
    let (status, body) = server
        .put("/v1/streams/clicks", &other, json!({ "partitions": 2 }))
        .await;
    assert!(status.is_success(), "stream: {body}");
    let key = server.create_key(&admin, &["publish"]).await;
    let base = changes_match_snapshot(&server, &base, "declares").await;

    // A queue deleted takes its binding: the tenant's routing comes whole.
    let (status, _) = server.delete("/v1/queues/jobs", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.delete("/v1/streams/clicks", &other).await;
    assert_eq!(status, StatusCode::OK);
    let (status, keys) = server.get("/v1/api-keys", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let id = keys["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| k["id"].as_str().unwrap_or_default().to_string())
        .find(|id| key.contains(id.as_str()))
        .unwrap_or_else(|| panic!("the new key in {keys}"));
    let (status, body) = server.delete(&format!("/v1/api-keys/{id}"), &admin).await;
    assert!(status.is_success(), "revoke: {body}");
    let after = changes_match_snapshot(&server, &base, "deletes").await;
    assert!(after["bindings"].as_array().is_some_and(|b| b.is_empty()));

    // Declared and deleted in between: named as removed, never sent.
    let (status, _) = server.put("/v1/queues/brief", &admin, json!({})).await;
    assert!(status.is_success());
    let (status, _) = server.delete("/v1/queues/brief", &admin).await;
    assert_eq!(status, StatusCode::OK);
    changes_match_snapshot(&server, &after, "declare then delete").await;
}

#[tokio::test]
async fn what_changes_cannot_carry_comes_as_a_snapshot() {
    let server = TestServer::start().await;
    server.create_tenant("acme").await;
    let version = snapshot(&server).await["version"]
        .as_i64()
        .expect("version");

    // A tenant created, a quota changed, a broker registered: only a snapshot says it.
    server.create_tenant("second").await;
    let answer = update(&server, version).await;
    assert!(answer.get("snapshot").is_some(), "tenant created: {answer}");
    server.set_quotas("acme", json!({ "max_queues": 7 })).await;
    let answer = update(&server, version + 1).await;
    assert!(answer.get("snapshot").is_some(), "quota changed: {answer}");

    // Without `changes`, the bare snapshot as before.
    let (status, bare) = server
        .get("/internal/v1/feed?since=-1&wait_ms=0", server.node_key())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(bare.get("version").is_some() && bare.get("snapshot").is_none());
}

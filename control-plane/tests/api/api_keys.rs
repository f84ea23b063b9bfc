//! `/v1/api-keys`: create, list, read and revoke; scopes, expiry and tenant isolation.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestServer, assert_invalid, assert_problem};

fn key_id(key: &str) -> &str {
    key.split('_').nth(1).expect("sk_<id>_<secret>")
}

#[tokio::test]
async fn admin_creates_reads_and_lists_keys() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let (status, created) = server
        .post(
            "/v1/api-keys",
            &admin,
            json!({ "name": "ci deploys", "scopes": ["publish", "manage", "publish"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // Scopes come back sorted and without duplicates.
    assert_eq!(created["scopes"], json!(["manage", "publish"]));
    assert_eq!(created["status"], "active");
    assert_eq!(created["created_by"], format!("key:{}", key_id(&admin)));
    let id = created["id"].as_str().unwrap();
    let secret = created["key"].as_str().unwrap();
    assert_eq!(key_id(secret), id);

    let (status, read) = server.get(&format!("/v1/api-keys/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        read.get("key").is_none(),
        "the secret is shown only once: {read}"
    );
    assert_eq!(read["name"], "ci deploys");
    assert_eq!(read["scopes"], created["scopes"]);

    let (status, page) = server.get("/v1/api-keys", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let mut ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![id, key_id(&admin)];
    want.sort();
    assert_eq!(ids, want);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("key").is_none())
    );

    // The new key works with its scopes.
    let (status, _) = server.put("/v1/queues/q", secret, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn key_creation_validates_its_body() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let post = |body| server.post("/v1/api-keys", &admin, body);
    assert_invalid(
        &post(json!({"name": "", "scopes": ["admin"]})).await,
        "name",
        "length",
    );
    assert_invalid(
        &post(json!({"name": "x".repeat(65), "scopes": ["admin"]})).await,
        "name",
        "length",
    );
    assert_invalid(
        &post(json!({"name": "k", "scopes": []})).await,
        "scopes",
        "required",
    );
    assert_invalid(&post(json!({"name": "k"})).await, "scopes", "required");
    assert_invalid(
        &post(json!({"name": "k", "scopes": ["root"]})).await,
        "scopes[0]",
        "enum",
    );
    assert_invalid(
        &post(json!({"name": "k", "scopes": "admin"})).await,
        "scopes",
        "type",
    );
    assert_invalid(
        &post(json!({"name": "k", "scopes": ["admin"], "expires_at": "2001-01-01T00:00:00Z"}))
            .await,
        "expires_at",
        "future",
    );
    assert_invalid(
        &post(json!({"name": "k", "scopes": ["admin"], "expires_at": "tomorrow"})).await,
        "expires_at",
        "type",
    );
    assert_invalid(
        &post(json!({"name": "k", "scopes": ["admin"], "tenant": "globex"})).await,
        "tenant",
        "unknown-field",
    );
    let (_, page) = server.get("/v1/api-keys", &admin).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "only the first key: {page}"
    );
}

#[tokio::test]
async fn only_admin_keys_manage_keys() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let admin_id = key_id(&admin).to_string();
    for scopes in [&["manage"][..], &["publish", "consume"]] {
        let key = server.create_key(&admin, scopes).await;
        let got = server
            .post(
                "/v1/api-keys",
                &key,
                json!({"name": "k", "scopes": ["admin"]}),
            )
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
        let got = server.get("/v1/api-keys", &key).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
        let got = server.get(&format!("/v1/api-keys/{admin_id}"), &key).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
        let got = server
            .delete(&format!("/v1/api-keys/{admin_id}"), &key)
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    // The operator is not a tenant: it cannot create a tenant's keys.
    let got = server
        .post(
            "/v1/api-keys",
            server.op_key(),
            json!({"name": "k", "scopes": ["admin"]}),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // The admin key was never revoked.
    assert_eq!(server.get("/v1/api-keys", &admin).await.0, StatusCode::OK);
}

#[tokio::test]
async fn another_tenants_keys_are_not_found() {
    let server = TestServer::start().await;
    let acme = server.create_tenant("acme").await;
    let globex = server.create_tenant("globex").await;
    let id = key_id(&acme);
    let got = server.get(&format!("/v1/api-keys/{id}"), &globex).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    let got = server.delete(&format!("/v1/api-keys/{id}"), &globex).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    // Still usable by its own tenant.
    let (status, key) = server.get(&format!("/v1/api-keys/{id}"), &acme).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(key["status"], "active");
    let got = server.get("/v1/api-keys/nosuchkey", &acme).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn revoked_key_is_refused_at_once() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let manage = server.create_key(&admin, &["manage"]).await;
    assert_eq!(server.get("/v1/queues", &manage).await.0, StatusCode::OK);

    let path = format!("/v1/api-keys/{}", key_id(&manage));
    let (status, revoked) = server.delete(&path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let revoked_at = revoked["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{revoked}");

    let got = server.get("/v1/queues", &manage).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    // Revoking again keeps the first time; the key stays listed.
    let (status, again) = server.delete(&path, &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["revoked_at"], revoked_at);
    let (_, page) = server.get("/v1/api-keys", &admin).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == key_id(&manage) && k["status"] == "revoked"),
        "{page}"
    );
}

#[tokio::test]
async fn expired_key_is_refused() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let expires_at = chrono::Utc::now() + Duration::from_secs(3);
    let (status, created) = server
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "short-lived", "scopes": ["manage"], "expires_at": expires_at}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    // Works before it expires (the deadline is three seconds away)...
    let (status, _) = server.get("/v1/queues", key).await;
    assert_eq!(status, StatusCode::OK);
    // ... and is refused after.
    let body = server
        .poll_status("/v1/queues", key, StatusCode::UNAUTHORIZED)
        .await;
    assert!(
        body["type"].as_str().unwrap().ends_with("/unauthorized"),
        "{body}"
    );
    assert!(chrono::Utc::now() >= expires_at);
    let (_, read) = server
        .get(
            &format!("/v1/api-keys/{}", created["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(read["status"], "expired");
}

#[tokio::test]
async fn keys_list_pages_by_id() {
    let server = TestServer::start().await;
    let admin = server.create_tenant_on("acme", "standard").await;
    for _ in 0..4 {
        server.create_key(&admin, &["publish"]).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/api-keys?limit=2".to_string();
    loop {
        let (status, page) = server.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|k| k["id"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/api-keys?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "ascending ids without repeats");
    assert_invalid(
        &server.get("/v1/api-keys?limit=0", &admin).await,
        "limit",
        "range",
    );
}

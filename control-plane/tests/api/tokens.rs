//! `POST /v1/tokens` and `/.well-known/jwks.json`: short-lived JWTs that carry their
//! key's scopes, stop with the key, cannot renew themselves, and verify offline.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, assert_invalid, assert_problem};

async fn mint(server: &TestServer, key: &str, query: &str) -> (StatusCode, Value) {
    server
        .request(Method::POST, &format!("/v1/tokens{query}"), Some(key), None)
        .await
}

async fn token(server: &TestServer, key: &str) -> String {
    let (status, body) = mint(server, key, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn token_from_a_key_works_as_a_bearer_with_the_keys_scopes() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let manage = server.create_key(&admin, &["manage", "publish"]).await;
    let publisher = server.create_key(&admin, &["publish"]).await;

    let (status, body) = mint(&server, &manage, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scopes"], json!(["manage", "publish"]));
    let expires_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["expires_at"].clone()).unwrap();
    let ttl = (expires_at - chrono::Utc::now()).num_seconds();
    assert!(
        (890..=900).contains(&ttl),
        "default ttl is the maximum, 900 s: {ttl}"
    );
    let manage_token = body["token"].as_str().unwrap();
    assert_eq!(manage_token.split('.').count(), 3, "a JWT");

    let (status, q) = server.put("/v1/queues/work", manage_token, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{q}");
    assert_eq!(
        server.get("/v1/queues/work", manage_token).await.0,
        StatusCode::OK
    );

    // A publish key's token cannot do more than the key.
    let publish_token = token(&server, &publisher).await;
    assert_eq!(
        server.get("/v1/queues/work", &publish_token).await.0,
        StatusCode::OK
    );
    let got = server
        .put("/v1/queues/other", &publish_token, json!({}))
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = server.get("/v1/api-keys", manage_token).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // An admin key's token is an admin.
    let admin_token = token(&server, &admin).await;
    assert_eq!(
        server.get("/v1/api-keys", &admin_token).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_cannot_mint_another_token() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let jwt = token(&server, &admin).await;
    let got = mint(&server, &jwt, "").await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    let got = server.request(Method::POST, "/v1/tokens", None, None).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// A token is only as revocable as its key, and the operator key has no
/// record to revoke: the operator gets no token, and a token that names the
/// operator (as older versions minted them) is not honoured.
#[tokio::test]
async fn the_operator_key_gets_no_token_and_operator_tokens_are_refused() {
    let server = TestServer::start().await;
    let got = mint(&server, server.op_key(), "").await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let detail = got.1["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("operator key itself"), "{}", got.1);

    // One signed with the server's own key, as the old code did.
    let pool = server.db().await;
    let signer = sluice_control::auth::jwt::Signer::load_or_create(&pool)
        .await
        .expect("the server's signing key");
    let now = chrono::Utc::now().timestamp();
    let old = signer
        .sign(&sluice_control::auth::jwt::Claims {
            iss: sluice_control::auth::jwt::ISSUER.into(),
            sub: "operator".into(),
            tenant: None,
            scopes: Vec::new(),
            iat: now,
            exp: now + 600,
        })
        .expect("sign");
    let got = server.get("/v1/tenants", &old).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        got.1["detail"]
            .as_str()
            .is_some_and(|d| d.contains("operator key itself")),
        "{}",
        got.1
    );
}

#[tokio::test]
async fn ttl_is_checked() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    for bad in ["0", "59", "901", "86400"] {
        let got = mint(&server, &admin, &format!("?ttl_seconds={bad}")).await;
        assert_invalid(&got, "ttl_seconds", "range");
    }
    assert_invalid(
        &mint(&server, &admin, "?ttl_seconds=soon").await,
        "ttl_seconds",
        "type",
    );
    assert_invalid(
        &mint(&server, &admin, "?scope=admin").await,
        "scope",
        "unknown-field",
    );
    for ok in [60, 900] {
        let (status, body) = mint(&server, &admin, &format!("?ttl_seconds={ok}")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let expires_at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(body["expires_at"].clone()).unwrap();
        let ttl = (expires_at - chrono::Utc::now()).num_seconds();
        assert!((ok - 10..=ok).contains(&ttl), "{ok}: {ttl}");
    }
}

#[tokio::test]
async fn revoking_the_key_stops_its_tokens() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let manage = server.create_key(&admin, &["manage"]).await;
    let jwt = token(&server, &manage).await;
    assert_eq!(server.get("/v1/queues", &jwt).await.0, StatusCode::OK);
    let id = manage.split('_').nth(1).unwrap();
    assert_eq!(
        server.delete(&format!("/v1/api-keys/{id}"), &admin).await.0,
        StatusCode::OK
    );
    let got = server.get("/v1/queues", &jwt).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    // The revoked key cannot mint a new one either.
    let got = mint(&server, &manage, "").await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn suspending_the_tenant_stops_its_tokens() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let jwt = token(&server, &admin).await;
    let op = Some(server.op_key());
    let (s, _) = server
        .request(Method::POST, "/v1/tenants/acme/suspend", op, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let got = server.get("/v1/queues", &jwt).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "tenant-suspended");
    let (s, _) = server
        .request(Method::POST, "/v1/tenants/acme/resume", op, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(server.get("/v1/queues", &jwt).await.0, StatusCode::OK);
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let manage = server.create_key(&admin, &["manage"]).await;
    let jwt = token(&server, &manage).await;
    let parts: Vec<&str> = jwt.split('.').collect();

    // Another signature byte.
    let mut signature = parts[2].to_string();
    let last = signature.pop().unwrap();
    signature.push(if last == 'A' { 'B' } else { 'A' });
    let resigned = format!("{}.{}.{signature}", parts[0], parts[1]);
    // Claims widened to `admin`, signature kept.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["scopes"], json!(["manage"]));
    claims["scopes"] = json!(["admin", "manage"]);
    let widened = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    // Unsigned (`alg: none`).
    let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);

    for bad in [&resigned, &widened, &unsigned, &"a.b.c".to_string()] {
        let got = server.get("/v1/queues", bad).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let got = server.get("/v1/api-keys", &widened).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    // The untouched token still works.
    assert_eq!(server.get("/v1/queues", &jwt).await.0, StatusCode::OK);
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    tenant: Option<String>,
    scopes: Vec<String>,
    iat: i64,
    exp: i64,
}

#[tokio::test]
async fn tokens_verify_offline_against_the_jwks() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let manage = server.create_key(&admin, &["manage", "consume"]).await;
    let (status, body) = mint(&server, &manage, "?ttl_seconds=120").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let jwt = body["token"].as_str().unwrap();

    let (status, jwks) = server
        .request(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let jwks: JwkSet = serde_json::from_value(jwks).expect("a JWK set");
    assert!(!jwks.keys.is_empty());
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let kid = header.kid.expect("tokens name their key");
    let jwk = jwks.find(&kid).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["sluice-control"]);
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key, &validation)
        .expect("verifies offline")
        .claims;
    assert_eq!(claims.iss, "sluice-control");
    assert_eq!(claims.sub, manage.split('_').nth(1).unwrap());
    assert_eq!(claims.tenant.as_deref(), Some("acme"));
    assert_eq!(claims.scopes, ["manage", "consume"]);
    assert_eq!(claims.exp - claims.iat, 120);

    // A token of another server (another signing key) does not verify here.
    let elsewhere = TestServer::start().await;
    let their_admin = elsewhere.create_tenant("acme").await;
    let foreign = token(&elsewhere, &their_admin).await;
    assert!(jsonwebtoken::decode::<Claims>(&foreign, &key, &validation).is_err());
    let got = server.get("/v1/queues", &foreign).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthorized");
}

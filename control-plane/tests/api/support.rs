//! The harness: a real control plane on a loopback port over a fresh Postgres database,
//! and small HTTP helpers that return the status with the parsed JSON body.

use std::ops::Deref;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_control::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long any polling helper waits before failing the test.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A running control plane; stopped (gracefully) when dropped.
pub struct TestServer {
    api: Api,
    database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

/// A cheap-to-clone client bound to one server, usable from spawned tasks.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    operator_key: String,
    node_key: String,
}

impl TestServer {
    pub async fn start() -> TestServer {
        // Creating the database may start a private cluster: blocking work.
        let database_url = tokio::task::spawn_blocking(sluice_devkit::test_database_url)
            .await
            .expect("test_database_url panicked");
        let operator_key = format!("sk_operator_{:032x}", rand::random::<u128>());
        let node_key = format!("nk_{:032x}", rand::random::<u128>());
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: database_url.clone(),
            db_max_connections: 16,
            operator_key: Some(operator_key.clone()),
            node_key: Some(node_key.clone()),
            token_ttl_seconds: 900,
            ..Config::default()
        };
        let state = sluice_control::build_state(config)
            .await
            .expect("build the control plane state");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(err) = sluice_control::serve(listener, state, shutdown).await {
                eprintln!("control plane stopped with an error: {err}");
            }
        });
        TestServer {
            api: Api {
                client: reqwest::Client::new(),
                base: format!("http://{address}"),
                operator_key,
                node_key,
            },
            database_url,
            shutdown: Some(tx),
        }
    }

    /// A handle to move into spawned tasks.
    pub fn api(&self) -> Api {
        self.api.clone()
    }

    /// A connection to the server's database, for setting up states the API
    /// cannot reach quickly (a broker silent for longer than the live window).
    pub async fn db(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database_url)
            .await
            .expect("connect to the test database")
    }
}

impl Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Api {
    pub fn op_key(&self) -> &str {
        &self.operator_key
    }

    /// The credential brokers present on `/internal/v1/*`.
    pub fn node_key(&self) -> &str {
        &self.node_key
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request (JSON body with `Content-Type: application/json` when given) and
    /// returns the status and the body parsed as JSON (`Value::Null` when empty, a
    /// string when it is not JSON).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        let content_type = bytes.as_ref().map(|_| "application/json");
        self.raw(method, path, key, content_type, bytes).await
    }

    /// Like [`Api::request`] with the body bytes and content type given as they are.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut builder = self.client.request(method.clone(), self.url(path));
        if let Some(key) = key {
            builder = builder.bearer_auth(key);
        }
        if let Some(content_type) = content_type {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let response = builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, Some(key), None).await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, Some(key), Some(body)).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(key), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PATCH, path, Some(key), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, Some(key), None).await
    }

    /// Creates a tenant on the free plan; returns its first admin key.
    pub async fn create_tenant(&self, name: &str) -> String {
        self.create_tenant_on(name, "free").await
    }

    pub async fn create_tenant_on(&self, name: &str, plan: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/tenants",
                self.op_key(),
                json!({ "name": name, "plan": plan }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create tenant {name}: {body}");
        body["admin_key"]["key"]
            .as_str()
            .expect("admin key in the response")
            .to_string()
    }

    /// Creates a key with `scopes` using the `admin` key; returns the credential.
    pub async fn create_key(&self, admin: &str, scopes: &[&str]) -> String {
        let (status, body) = self
            .post(
                "/v1/api-keys",
                admin,
                json!({ "name": format!("{scopes:?} key"), "scopes": scopes }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create key: {body}");
        body["key"]
            .as_str()
            .expect("key in the response")
            .to_string()
    }

    /// Sets some of a tenant's quotas as the operator.
    pub async fn set_quotas(&self, tenant: &str, patch: Value) {
        let (status, body) = self
            .patch(
                &format!("/v1/tenants/{tenant}/quotas"),
                self.op_key(),
                patch,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "set quotas: {body}");
    }

    /// Repeats `GET path` until it answers `want`, failing after [`DEADLINE`].
    pub async fn poll_status(&self, path: &str, key: &str, want: StatusCode) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.get(path, key).await;
            if status == want {
                return body;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "GET {path} still answers {status} ({body}) after {DEADLINE:?}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Asserts a problem document of `status` whose `type` ends with `/<slug>`.
#[track_caller]
pub fn assert_problem(got: &(StatusCode, Value), status: StatusCode, slug: &str) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "unexpected status, body: {body}");
    let problem_type = body["type"].as_str().unwrap_or_default();
    assert!(
        problem_type.ends_with(&format!("/{slug}")),
        "want problem type …/{slug}, got {body}"
    );
    assert_eq!(body["status"], json!(status.as_u16()), "{body}");
}

/// Asserts a 422 validation problem naming `field` and `rule`.
#[track_caller]
pub fn assert_invalid(got: &(StatusCode, Value), field: &str, rule: &str) {
    assert_problem(got, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let body = &got.1;
    assert_eq!(body["field"], json!(field), "field of {body}");
    assert_eq!(body["rule"], json!(rule), "rule of {body}");
}

/// The names of a list page's items.
pub fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|item| {
            item["name"]
                .as_str()
                .or_else(|| item["id"].as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

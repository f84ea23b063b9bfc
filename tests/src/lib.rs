//! Helpers shared by the end-to-end tests in `tests/tests/`: find the
//! workspace's built binaries, start them as supervised processes against a
//! private Postgres, and talk to them over HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use rand::distr::Alphanumeric;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sluice_devkit::{ChildProcess, Output, PgCluster, PgOptions, free_port};

/// A binary of this workspace, built by `cargo build --bins` (which
/// `make test` runs first) next to the test executable's `deps/` folder.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    let path = profile_dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: run `cargo build --bins` first (make test does)",
            path.display()
        );
    }
    Ok(path)
}

/// A private Postgres cluster in a temporary directory, removed on drop.
pub struct Postgres {
    pub cluster: PgCluster,
    _dir: tempfile::TempDir,
}

impl Postgres {
    pub fn start() -> anyhow::Result<Postgres> {
        let dir = tempfile::Builder::new().prefix("sluice-e2e-pg").tempdir()?;
        let mut options = PgOptions::new(dir.path().join("pg"));
        options.for_tests = true;
        let cluster = PgCluster::start(options)?;
        cluster.create_database("sluice")?;
        Ok(Postgres { cluster, _dir: dir })
    }

    pub fn url(&self) -> String {
        self.cluster.url("sluice")
    }
}

/// The real `sluice-control` binary, listening on a free loopback port.
pub struct ControlPlane {
    pub process: ChildProcess,
    pub url: String,
    pub operator_key: String,
}

impl ControlPlane {
    pub fn start(
        database_url: &str,
        operator_key: &str,
        log: &Path,
    ) -> anyhow::Result<ControlPlane> {
        ControlPlane::start_with(database_url, operator_key, log, &[])
    }

    /// Starts with extra settings, e.g. `("SLUICE_CONTROL_NODE_KEY", "...")`.
    pub fn start_with(
        database_url: &str,
        operator_key: &str,
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<ControlPlane> {
        let port = free_port()?;
        let mut command = Command::new(workspace_binary("sluice-control")?);
        command.envs(env.iter().copied());
        command
            .env("SLUICE_CONTROL_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLUICE_CONTROL_DATABASE_URL", database_url)
            .env("SLUICE_CONTROL_OPERATOR_KEY", operator_key);
        let mut process = ChildProcess::spawn(
            "sluice-control",
            command,
            Output::LogFile(log.to_path_buf()),
        )?;
        let url = format!("http://127.0.0.1:{port}");
        process.wait_http_ok(&format!("{url}/readyz"), Duration::from_secs(60))?;
        Ok(ControlPlane {
            process,
            url,
            operator_key: operator_key.to_string(),
        })
    }
}

/// The real `sluice-broker` binary, registered with a control plane.
pub struct Broker {
    pub process: ChildProcess,
    pub url: String,
}

impl Broker {
    pub fn start(
        control_url: &str,
        node_key: &str,
        node_id: &str,
        data_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<Broker> {
        Broker::start_with(control_url, node_key, node_id, data_dir, log, &[])
    }

    /// [`Broker::start`] with extra `SLUICE_BROKER_*` settings in `env`.
    pub fn start_with(
        control_url: &str,
        node_key: &str,
        node_id: &str,
        data_dir: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Broker> {
        let port = free_port()?;
        let mut command = Command::new(workspace_binary("sluice-broker")?);
        command
            .env("SLUICE_BROKER_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLUICE_BROKER_CONTROL_URL", control_url)
            .env("SLUICE_BROKER_NODE_KEY", node_key)
            .env("SLUICE_BROKER_NODE_ID", node_id)
            .env("SLUICE_BROKER_DATA_DIR", data_dir)
            .envs(env.iter().copied());
        let mut process =
            ChildProcess::spawn("sluice-broker", command, Output::LogFile(log.to_path_buf()))?;
        let url = format!("http://127.0.0.1:{port}");
        process.wait_http_ok(&format!("{url}/readyz"), Duration::from_secs(60))?;
        Ok(Broker { process, url })
    }
}

/// How long [`Deployment::key`] waits for the broker to learn a new key.
const KEY_PROPAGATION: Duration = Duration::from_secs(30);

/// Polls `check` every 20 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn random_operator_key() -> String {
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("sk_operator_{secret}")
}

/// A JSON-over-HTTP client that returns status and body, problem documents included.
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// `POST`s JSON and insists on 200; the body of the answer.
    pub async fn post_ok(&self, key: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, answer) = self.call(Method::POST, path, Some(key), Some(body)).await?;
        if status != StatusCode::OK {
            bail!("POST {path}: {status} {answer}");
        }
        Ok(answer)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }
}

/// The node key the one-broker deployments of the data-plane tests use.
pub const NODE_KEY: &str = "e2e-node-key";

/// A whole deployment for data-plane tests: Postgres, a control plane, one
/// broker (node `n1`) and a tenant `acme` with its admin key.
///
/// Fields drop in order: the broker first (its feed long-poll would hold the
/// control plane's graceful shutdown open), then the control plane, then
/// Postgres, and the directory last.
pub struct Deployment {
    pub broker: Broker,
    pub control: ControlPlane,
    /// The control plane's API.
    pub api: Api,
    /// The broker's data API.
    pub data: Api,
    pub admin: String,
    /// The operator key (tenants, quotas).
    pub operator: String,
    pub pg: Postgres,
    pub dir: tempfile::TempDir,
}

impl Deployment {
    pub async fn start() -> anyhow::Result<Deployment> {
        Deployment::start_with_broker_env(&[]).await
    }

    /// [`Deployment::start`] with extra `SLUICE_BROKER_*` settings for its broker.
    pub async fn start_with_broker_env(broker_env: &[(&str, &str)]) -> anyhow::Result<Deployment> {
        let pg = Postgres::start()?;
        let dir = tempfile::Builder::new().prefix("sluice-e2e").tempdir()?;
        let operator = random_operator_key();
        let env = [("SLUICE_CONTROL_NODE_KEY", NODE_KEY)];
        let control =
            ControlPlane::start_with(&pg.url(), &operator, &dir.path().join("control.log"), &env)?;
        let broker = Broker::start_with(
            &control.url,
            NODE_KEY,
            "n1",
            &dir.path().join("broker"),
            &dir.path().join("broker.log"),
            broker_env,
        )?;
        let api = Api::new(&control.url);
        let data = Api::new(&broker.url);
        let mut deployment = Deployment {
            broker,
            control,
            api,
            data,
            admin: String::new(),
            operator: operator.clone(),
            pg,
            dir,
        };
        deployment.admin = deployment.tenant(&operator, "acme").await?;
        // The free plan's publish rate (100 messages/s) would throttle the
        // scenarios; tests of the rate quota set their own.
        deployment
            .set_quotas(serde_json::json!({
                "publish_messages_per_second": 1_000_000,
                "publish_bytes_per_second": 1_i64 << 30,
            }))
            .await?;
        Ok(deployment)
    }

    /// A deployment with a stream of `partitions` partitions, and an app key
    /// of the tenant (`publish` and `consume`).
    pub async fn with_stream(
        stream: &str,
        partitions: u32,
    ) -> anyhow::Result<(Deployment, String)> {
        let sluice = Deployment::start().await?;
        let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
        sluice
            .declare(
                &sluice.admin,
                &format!("/v1/streams/{stream}"),
                serde_json::json!({ "partitions": partitions }),
            )
            .await?;
        Ok((sluice, app))
    }

    /// Changes quotas of the `acme` tenant (as the operator).
    pub async fn set_quotas(&self, quotas: Value) -> anyhow::Result<()> {
        let (status, body) = self
            .api
            .call(
                Method::PATCH,
                "/v1/tenants/acme/quotas",
                Some(&self.operator),
                Some(quotas.clone()),
            )
            .await?;
        if !status.is_success() {
            bail!("setting acme's quotas {quotas}: {status} {body}");
        }
        Ok(())
    }

    /// Creates a tenant; returns its admin key.
    pub async fn tenant(&self, operator: &str, name: &str) -> anyhow::Result<String> {
        let (status, tenant) = self
            .api
            .call(
                Method::POST,
                "/v1/tenants",
                Some(operator),
                Some(serde_json::json!({ "name": name })),
            )
            .await?;
        if !status.is_success() {
            bail!("creating tenant {name}: {status} {tenant}");
        }
        Ok(tenant["admin_key"]["key"]
            .as_str()
            .context("no admin key")?
            .to_string())
    }

    /// A new key of `admin`'s tenant with `scopes`, once the broker knows it
    /// (key creation waits at most `apply_wait_ms` for the brokers and
    /// answers 201 either way, where a declare would answer 202).
    pub async fn key(&self, admin: &str, scopes: &[&str]) -> anyhow::Result<String> {
        let (status, key) = self
            .api
            .call(
                Method::POST,
                "/v1/api-keys",
                Some(admin),
                Some(serde_json::json!({ "name": scopes.join("-"), "scopes": scopes })),
            )
            .await?;
        if !status.is_success() {
            bail!("creating a key: {status} {key}");
        }
        let key = key["key"].as_str().context("no key")?.to_string();
        // Setup, not the revocation bound (broker_auth.rs asserts that): a CI
        // machine under load gets a generous wait, and a slow one is reported.
        let started = std::time::Instant::now();
        let known = eventually(KEY_PROPAGATION, || async {
            matches!(
                self.data
                    .call(Method::GET, "/v1/whoami", Some(&key), None)
                    .await,
                Ok((StatusCode::OK, _))
            )
        })
        .await;
        let waited = started.elapsed();
        if !known || waited > Duration::from_secs(5) {
            let (_, ready) = self
                .data
                .call(Method::GET, "/readyz", None, None)
                .await
                .unwrap_or_default();
            let report = format!(
                "the broker learned a new key after {waited:?} (known: {known}); broker: {ready}\n\
                 broker log:\n{}\ncontrol-plane log:\n{}",
                self.broker.process.log_tail(40),
                self.control.process.log_tail(40)
            );
            if !known {
                bail!(report);
            }
            eprintln!("slow key propagation: {report}");
        }
        Ok(key)
    }

    /// `PUT`s a control-plane resource and insists the brokers applied it (201 or 200).
    pub async fn declare(&self, key: &str, path: &str, spec: Value) -> anyhow::Result<Value> {
        let (status, body) = self
            .api
            .call(Method::PUT, path, Some(key), Some(spec))
            .await?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            bail!("declaring {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Kills the broker with SIGKILL (no shutdown at all) and starts it again
    /// on the same data directory.
    pub fn kill_and_restart_broker(&mut self) -> anyhow::Result<()> {
        let pid = self.broker.process.id().to_string();
        let status = Command::new("kill").args(["-9", &pid]).status()?;
        if !status.success() {
            bail!("kill -9 {pid} failed");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.broker.process.try_wait()?.is_none() {
            if std::time::Instant::now() > deadline {
                bail!("broker {pid} survived kill -9");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.restart_broker()
    }

    /// Starts one more broker (node `node_id`) on the same control plane.
    pub fn another_broker(&self, node_id: &str) -> anyhow::Result<Broker> {
        Broker::start(
            &self.control.url,
            NODE_KEY,
            node_id,
            &self.dir.path().join(format!("broker-{node_id}")),
            &self.dir.path().join(format!("broker-{node_id}.log")),
        )
    }

    /// Starts the broker again on the same data directory (after it stopped or was killed).
    pub fn restart_broker(&mut self) -> anyhow::Result<()> {
        self.broker = Broker::start(
            &self.control.url,
            NODE_KEY,
            "n1",
            &self.dir.path().join("broker"),
            &self.dir.path().join("broker-restarted.log"),
        )?;
        self.data = Api::new(&self.broker.url);
        Ok(())
    }
}

/// One Server-Sent Event: its `event:` name and `data:` text.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// A push consumer (`GET /v1/queues/{q}/consume`) reading the event stream.
/// Dropping it closes the connection, as a crashed consumer would.
pub struct PushConsumer {
    /// The consumer id the broker gave this connection.
    pub id: String,
    response: reqwest::Response,
    buffer: String,
}

impl PushConsumer {
    /// Connects with `query` (e.g. `prefetch=1`) and waits for the broker to
    /// name the consumer.
    pub async fn connect(
        data: &Api,
        key: &str,
        queue: &str,
        query: &str,
    ) -> anyhow::Result<PushConsumer> {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/queues/{queue}/consume?{query}", data.base))
            .bearer_auth(key)
            .send()
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("consume {queue}: {status} {body}");
        }
        let mut consumer = PushConsumer {
            id: String::new(),
            response,
            buffer: String::new(),
        };
        let hello = consumer
            .next_event(Duration::from_secs(5))
            .await?
            .context("no consumer event")?;
        let hello: Value = serde_json::from_str(&hello.data)?;
        consumer.id = hello["consumer"].as_str().unwrap_or_default().to_string();
        Ok(consumer)
    }

    /// The next event within `timeout` (None when it passes or the stream ends).
    pub async fn next_event(&mut self, timeout: Duration) -> anyhow::Result<Option<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event.event = name.trim().to_string();
                    } else if let Some(data) = line.strip_prefix("data:") {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                    }
                }
                if event.data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Ok(Some(event));
            }
            let chunk = match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Ok(None),
                Ok(chunk) => chunk?,
            };
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return Ok(None),
            }
        }
    }

    /// Whether no message arrives within `period` (a full window stays
    /// full, a waiting consumer waits).
    pub async fn stays_quiet(&mut self, period: Duration) -> anyhow::Result<bool> {
        Ok(self.next_message(period).await?.is_none())
    }

    /// The next pushed message within `timeout`.
    pub async fn next_message(&mut self, timeout: Duration) -> anyhow::Result<Option<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await? {
                None => return Ok(None),
                Some(event) if event.event == "message" => {
                    return Ok(Some(serde_json::from_str(&event.data)?));
                }
                Some(_) => continue,
            }
        }
    }
}

impl Deployment {
    /// Binds `queue` to exchange `source` with `routing_key` (as the tenant's admin).
    pub async fn bind(&self, source: &str, queue: &str, routing_key: &str) -> anyhow::Result<()> {
        self.bind_spec(
            serde_json::json!({"source": source, "destination": queue, "routing_key": routing_key}),
        )
        .await
    }

    /// Declares any binding (headers, weights, an exchange as destination)
    /// as the tenant's admin.
    pub async fn bind_spec(&self, binding: Value) -> anyhow::Result<()> {
        let (status, body) = self
            .api
            .call(
                Method::POST,
                "/v1/bindings",
                Some(&self.admin),
                Some(binding.clone()),
            )
            .await?;
        if !status.is_success() {
            bail!("binding {binding}: {status} {body}");
        }
        Ok(())
    }

    /// Receives every ready message of `queue` (without waiting), leaving
    /// them leased.
    pub async fn drain(&self, key: &str, queue: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        loop {
            let batch = self.receive(key, queue, 100, 0).await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    /// The bodies of every ready message of `queue`, sorted.
    pub async fn bodies(&self, key: &str, queue: &str) -> anyhow::Result<Vec<String>> {
        let mut bodies: Vec<String> = self
            .drain(key, queue)
            .await?
            .iter()
            .filter_map(|m| m["body"].as_str().map(str::to_string))
            .collect();
        bodies.sort();
        Ok(bodies)
    }

    /// Publishes `messages` through `exchange`; answers the per-message results.
    pub async fn publish(
        &self,
        key: &str,
        exchange: &str,
        messages: Vec<Value>,
    ) -> anyhow::Result<Vec<Value>> {
        let (status, body) = self
            .data
            .call(
                Method::POST,
                &format!("/v1/exchanges/{exchange}/publish"),
                Some(key),
                Some(serde_json::json!({ "messages": messages })),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("publishing through {exchange}: {status} {body}");
        }
        Ok(body["results"].as_array().cloned().unwrap_or_default())
    }

    /// Publishes `messages` straight to `queue`.
    pub async fn publish_to_queue(
        &self,
        key: &str,
        queue: &str,
        messages: Vec<Value>,
    ) -> anyhow::Result<Value> {
        let (status, body) = self
            .data
            .call(
                Method::POST,
                &format!("/v1/queues/{queue}/messages"),
                Some(key),
                Some(serde_json::json!({ "messages": messages })),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("publishing to {queue}: {status} {body}");
        }
        Ok(body)
    }

    /// Receives (pull) up to `max` messages from `queue`, waiting up to `wait_ms`.
    pub async fn receive(
        &self,
        key: &str,
        queue: &str,
        max: u32,
        wait_ms: u64,
    ) -> anyhow::Result<Vec<Value>> {
        let (status, body) = self
            .data
            .call(
                Method::POST,
                &format!("/v1/queues/{queue}/receive"),
                Some(key),
                Some(serde_json::json!({"max_messages": max, "wait_ms": wait_ms})),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("receiving from {queue}: {status} {body}");
        }
        Ok(body["messages"].as_array().cloned().unwrap_or_default())
    }

    /// Acks one delivery by its receipt.
    pub async fn ack(&self, key: &str, queue: &str, message: &Value) -> anyhow::Result<()> {
        let receipt = message["receipt"].as_str().context("no receipt")?;
        let (status, body) = self
            .data
            .call(
                Method::POST,
                &format!("/v1/queues/{queue}/ack"),
                Some(key),
                Some(serde_json::json!({ "receipts": [receipt] })),
            )
            .await?;
        if status != StatusCode::OK || body["results"][0]["status"] != "ok" {
            bail!("ack on {queue}: {status} {body}");
        }
        Ok(())
    }

    /// Nacks one delivery (`action` as the API names it, e.g. `requeue`).
    pub async fn nack(
        &self,
        key: &str,
        queue: &str,
        message: &Value,
        action: &str,
    ) -> anyhow::Result<Value> {
        let receipt = message["receipt"].as_str().context("no receipt")?;
        let (status, body) = self
            .data
            .call(
                Method::POST,
                &format!("/v1/queues/{queue}/nack"),
                Some(key),
                Some(serde_json::json!({ "receipt": receipt, "action": action })),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("nack on {queue}: {status} {body}");
        }
        Ok(body)
    }

    /// The queue's counters (`ready`, `unacked`, `delayed`, `outbox`, ...).
    pub async fn stats(&self, key: &str, queue: &str) -> anyhow::Result<Value> {
        let (status, body) = self
            .data
            .call(
                Method::GET,
                &format!("/v1/queues/{queue}/stats"),
                Some(key),
                None,
            )
            .await?;
        if status != StatusCode::OK {
            bail!("stats of {queue}: {status} {body}");
        }
        Ok(body)
    }
}

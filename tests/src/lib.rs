//! Helpers shared by the end-to-end tests in `tests/tests/`: find the
//! workspace's built binaries, start them as supervised processes against a
//! private Postgres, and talk to them over HTTP with the typed client
//! (`sluice-client`); [`Api::call`] still sends whatever JSON a test builds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;
use sluice_client::control::{CreateApiKey, CreateTenant, QuotasPatch, Scope, StreamSpec};
use sluice_client::{Client, Method, RetryPolicy, StatusCode};
use sluice_devkit::{ChildProcess, Output, PgCluster, PgOptions, free_port};

mod push;
mod queue_helpers;

pub use push::{PushConsumer, SseEvent};

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
    /// The data API (no `/metrics` here).
    pub url: String,
    /// The operator's Prometheus scrape URL (`<metrics_listen>/metrics`).
    pub metrics_url: String,
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
        let metrics_port = free_port()?;
        let mut command = Command::new(workspace_binary("sluice-broker")?);
        command
            .env("SLUICE_BROKER_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "SLUICE_BROKER_METRICS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("SLUICE_BROKER_CONTROL_URL", control_url)
            .env("SLUICE_BROKER_NODE_KEY", node_key)
            .env("SLUICE_BROKER_NODE_ID", node_id)
            .env("SLUICE_BROKER_DATA_DIR", data_dir)
            .envs(env.iter().copied());
        let mut process =
            ChildProcess::spawn("sluice-broker", command, Output::LogFile(log.to_path_buf()))?;
        let url = format!("http://127.0.0.1:{port}");
        process.wait_http_ok(&format!("{url}/readyz"), Duration::from_secs(60))?;
        let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
        Ok(Broker {
            process,
            url,
            metrics_url,
        })
    }

    /// The broker's Prometheus text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(&self.metrics_url)
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// The operator's health report (`/healthz` on the metrics listener).
    pub async fn health(&self) -> anyhow::Result<serde_json::Value> {
        let url = self.metrics_url.replace("/metrics", "/healthz");
        Ok(reqwest::get(&url).await?.error_for_status()?.json().await?)
    }

    /// Per queue hosted here (awake or asleep), the value of the per-queue
    /// gauge `series` (e.g. `sluice_queue_awake`), read from `/metrics`.
    pub async fn queue_series(&self, series: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        self.series_by(series, "queue").await
    }

    /// The samples of `series` in `/metrics`, keyed by their `label`'s value.
    pub async fn series_by(
        &self,
        series: &str,
        label: &str,
    ) -> anyhow::Result<BTreeMap<String, u64>> {
        let prefix = format!("{label}=\"");
        let text = self.metrics().await?;
        let mut values = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(series).and_then(|r| r.strip_prefix('{')) else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let queue = labels
                .split(',')
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|q| q.strip_suffix('"'));
            if let (Some(queue), Ok(value)) = (queue, value.trim().parse::<u64>()) {
                values.insert(queue.to_string(), value);
            }
        }
        Ok(values)
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

/// The integer at `field` of `value`; panics, naming the field and showing
/// the document, when it is missing or not an integer. Comparing
/// `Option`s instead would let a missing field pass (`None < Some(_)`).
pub fn int_field(value: &Value, field: &str) -> i64 {
    value[field]
        .as_i64()
        .unwrap_or_else(|| panic!("`{field}` is missing or not an integer in {value}"))
}

pub fn random_operator_key() -> String {
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("sk_operator_{secret}")
}

/// One endpoint's API for tests: [`Api::call`] sends anything (test-built
/// JSON, malformed bodies) and returns status and body, problem documents
/// included; [`Api::as_key`] gives the typed client. Retries are off, so a
/// test sees every 429 and 503 as it came.
pub struct Api {
    pub base: String,
    client: Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            client: Client::new(base).with_retry(RetryPolicy::NONE),
        }
    }

    /// The typed client of this endpoint, without a credential.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The typed client of this endpoint, authenticating with `key`.
    pub fn as_key(&self, key: &str) -> Client {
        self.client.with_bearer(key)
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
        let mut call = self.client.request(method, path);
        if let Some(key) = key {
            call = call.bearer(key);
        }
        if let Some(body) = body {
            call = call.json(&body);
        }
        let answer = call.await?;
        let value = if answer.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&answer.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.body).into()))
        };
        Ok((answer.status, value))
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
            .set_quota_patch(&QuotasPatch {
                publish_messages_per_second: Some(1_000_000),
                publish_bytes_per_second: Some(1 << 30),
                ..QuotasPatch::default()
            })
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
        let declared = sluice
            .api
            .as_key(&sluice.admin)
            .declare_stream(stream, &StreamSpec::partitions(partitions))
            .await
            .with_context(|| format!("declaring stream {stream}"))?;
        if !declared.applied() {
            bail!("declaring stream {stream}: {}", declared.status);
        }
        Ok((sluice, app))
    }

    /// Changes quotas of the `acme` tenant (as the operator); `quotas` is a
    /// `QuotasPatch` in JSON.
    pub async fn set_quotas(&self, quotas: Value) -> anyhow::Result<()> {
        let patch: QuotasPatch = serde_json::from_value(quotas.clone())
            .with_context(|| format!("{quotas} is no quota patch"))?;
        self.set_quota_patch(&patch).await
    }

    /// Changes quotas of the `acme` tenant (as the operator).
    pub async fn set_quota_patch(&self, patch: &QuotasPatch) -> anyhow::Result<()> {
        self.api
            .as_key(&self.operator)
            .set_quotas("acme", patch)
            .await
            .with_context(|| format!("setting acme's quotas {patch:?}"))?;
        Ok(())
    }

    /// Creates a tenant; returns its admin key.
    pub async fn tenant(&self, operator: &str, name: &str) -> anyhow::Result<String> {
        let created = self
            .api
            .as_key(operator)
            .create_tenant(&CreateTenant::new(name))
            .await
            .with_context(|| format!("creating tenant {name}"))?;
        Ok(created.admin_key.key)
    }

    /// A new key of `admin`'s tenant with `scopes`, once the broker knows it
    /// (key creation waits at most `apply_wait_ms` for the brokers and
    /// answers 201 either way, where a declare would answer 202).
    pub async fn key(&self, admin: &str, scopes: &[&str]) -> anyhow::Result<String> {
        let scopes_typed = scopes
            .iter()
            .map(|scope| serde_json::from_value::<Scope>(Value::from(*scope)))
            .collect::<Result<Vec<Scope>, _>>()
            .with_context(|| format!("scopes {scopes:?}"))?;
        let key = self
            .api
            .as_key(admin)
            .create_api_key(&CreateApiKey::new(scopes.join("-"), &scopes_typed))
            .await
            .context("creating a key")?
            .key;
        // Setup, not the revocation bound (broker_auth.rs asserts that): a CI
        // machine under load gets a generous wait, and a slow one is reported.
        let started = std::time::Instant::now();
        let as_key = self.data.as_key(&key);
        let known = eventually(KEY_PROPAGATION, || async { as_key.whoami().await.is_ok() }).await;
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
        self.restart_broker_with(&[])
    }

    /// [`Deployment::restart_broker`] with extra `SLUICE_BROKER_*` settings.
    pub fn restart_broker_with(&mut self, env: &[(&str, &str)]) -> anyhow::Result<()> {
        self.broker = Broker::start_with(
            &self.control.url,
            NODE_KEY,
            "n1",
            &self.dir.path().join("broker"),
            &self.dir.path().join("broker-restarted.log"),
            env,
        )?;
        self.data = Api::new(&self.broker.url);
        Ok(())
    }
}

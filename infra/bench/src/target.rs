//! The deployment under load: either a private one started here (`--spawn`:
//! Postgres in a temp dir, the `sluice-control` and `sluice-broker` binaries
//! next to this executable) or `make dev`'s (`--dev-json`). Either way a
//! fresh tenant, a publish+consume key and the benchmark queue or stream
//! are created (or, for the `queues` mode, only the tenant with room for
//! its queues). A spawned broker can be restarted, gracefully or by kill -9.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Deserialize;
use sluice_client::control::{
    CreateApiKey, CreateTenant, DeleteOptions, Plan, QueueSpec, QuotasPatch, Scope, StreamSpec,
};
use sluice_client::{Client, RetryPolicy};
use sluice_devkit::{ChildProcess, Output, PgCluster, PgOptions, free_port};

use crate::args::TargetArgs;

const NODE_KEY: &str = "bench-node-key";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a broker stopped with SIGTERM gets to shut down before SIGKILL.
const GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// A publish-rate quota no run on one machine reaches (per second, messages and bytes).
const UNLIMITED_RATE: i64 = 1 << 50;

/// What `make dev` writes to `.sluice/dev.json`.
#[derive(Debug, Deserialize)]
struct DevJson {
    control_url: String,
    broker_url: String,
    operator_key: String,
}

/// A private deployment; its processes and Postgres stop when this drops
/// (processes first, then Postgres, then the temp directory goes).
pub struct Spawned {
    broker: ChildProcess,
    broker_bin: PathBuf,
    control_url: String,
    control: ChildProcess,
    _pg: PgCluster,
    dir: tempfile::TempDir,
}

impl Spawned {
    /// Where the broker keeps its segment logs (for the fsync baseline's default).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The running broker's process id.
    pub fn broker_pid(&self) -> u32 {
        self.broker.id()
    }

    /// Fails with the broker's exit status and the tail of its log if it
    /// is no longer running.
    pub fn broker_running(&mut self) -> anyhow::Result<()> {
        self.broker
            .ensure_running()
            .context("the broker is not running")
    }

    /// The key brokers (and the feed reader of the `queues` mode) present
    /// to the control plane's internal API.
    pub fn node_key(&self) -> &'static str {
        NODE_KEY
    }

    /// The control plane's process id.
    pub fn control_pid(&self) -> u32 {
        self.control.id()
    }

    /// Stops the broker as `stop` says and starts it again on the same data
    /// directory (node `n1`, same control plane), waiting up to
    /// `ready_within` for it to answer `/readyz`; blocking. The new broker's
    /// log is `broker-<log>.log`.
    pub fn restart_broker(
        &mut self,
        stop: Stop,
        log: &str,
        ready_within: Duration,
    ) -> anyhow::Result<Restarted> {
        let pid = self.broker.id();
        let stopping = Instant::now();
        let exit = match stop {
            Stop::Graceful => self
                .broker
                .stop_with_grace(GRACEFUL_STOP)
                .with_context(|| format!("stopping broker {pid} with SIGTERM"))?,
            Stop::Kill => {
                let killed = Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .context("running kill")?;
                if !killed.success() {
                    bail!("kill -9 {pid} failed");
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    if let Some(status) = self.broker.try_wait()? {
                        break status;
                    }
                    if Instant::now() > deadline {
                        bail!("broker {pid} survived kill -9");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        let stopped = stopping.elapsed();
        let started = Instant::now();
        let (broker, url) = start_broker(
            &self.broker_bin,
            &self.control_url,
            self.dir.path(),
            &format!("broker-{log}.log"),
            ready_within,
        )?;
        self.broker = broker;
        Ok(Restarted {
            url,
            stopped,
            exit: exit.to_string(),
            exited_cleanly: exit.success(),
            started,
            ready: started.elapsed(),
        })
    }

    /// Where the broker keeps its data (its Raft logs, snapshots, pages).
    pub fn broker_data_dir(&self) -> PathBuf {
        self.dir.path().join("broker")
    }

    /// The broker's resident memory, where `/proc` has it.
    pub fn broker_memory(&self) -> Option<Resident> {
        let status = crate::process::read_status(self.broker.id()).ok()?;
        Some(Resident {
            total: status.rss_bytes,
            anonymous: status.anonymous_bytes,
        })
    }
}

/// How [`Spawned::restart_broker`] stops the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, then up to [`GRACEFUL_STOP`] for the broker to shut down by
    /// itself (SIGKILL after that, which `exit` then shows).
    Graceful,
    /// SIGKILL: a crash, nothing flushed or closed.
    Kill,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Graceful => "sigterm",
            Stop::Kill => "sigkill",
        }
    }
}

/// What a broker restart took.
#[derive(Debug, Clone)]
pub struct Restarted {
    /// The new broker's data URL.
    pub url: String,
    /// From the signal until the old process was gone.
    pub stopped: Duration,
    /// How the old process ended (`exit status: 0`, `signal: 9 (SIGKILL)`).
    pub exit: String,
    pub exited_cleanly: bool,
    /// When the new process was started.
    pub started: Instant,
    /// From `started` until it answered `/readyz`.
    pub ready: Duration,
}

/// A process's resident memory in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Resident {
    /// Everything resident (`VmRSS`), file pages such as mapped segments included.
    pub total: u64,
    /// Heap and stacks (`RssAnon`): what the process cannot give back to the page cache.
    pub anonymous: u64,
}

/// What a run loads: a queue, a stream with this many partitions, or many
/// queues and streams that the run declares itself.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
    Queue,
    Stream {
        partitions: u64,
    },
    /// Nothing is declared by [`Target::prepare`]; the tenant's count quotas
    /// are set to these (the plans stop at 10,000 queues and partitions).
    Many {
        queues: u64,
        streams: u64,
        partitions: u64,
    },
}

/// Ready-to-use endpoints and credentials for one run.
pub struct Target {
    pub kind: &'static str,
    pub broker_url: String,
    pub control_url: String,
    pub admin_key: String,
    /// A key with the `publish` and `consume` scopes.
    pub key: String,
    pub tenant: String,
    /// Kept to delete the tenant after a `Resource::Many` run against `make dev`.
    operator_key: String,
    /// The queue's or stream's name (unused with `Resource::Many`).
    pub name: String,
    pub resource: Resource,
    pub spawned: Option<Spawned>,
}

fn random_suffix(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect::<String>()
        .to_lowercase()
}

/// A binary of this workspace in the same directory as `sluice-bench`.
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating sluice-bench")?;
    let dir = exe
        .parent()
        .context("sluice-bench has no parent directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with the same profile and target dir, e.g. \
             `cargo build --release -p sluice-bench -p sluice-control -p sluice-broker`",
            path.display()
        );
    }
    Ok(path)
}

/// Starts Postgres, the control plane and one broker; blocking.
fn spawn_deployment(operator_key: &str) -> anyhow::Result<(Spawned, String, String)> {
    let control_bin = sibling_binary("sluice-control")?;
    let broker_bin = sibling_binary("sluice-broker")?;
    let dir = tempfile::Builder::new()
        .prefix("sluice-bench")
        .tempdir()
        .context("creating the temp dir")?;
    let mut options = PgOptions::new(dir.path().join("pg"));
    // Postgres holds only the control plane's topology, never messages.
    options.for_tests = true;
    let pg = PgCluster::start(options).context("starting Postgres")?;
    pg.create_database("sluice")
        .context("creating the database")?;

    let port = free_port()?;
    let control_url = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(control_bin);
    command
        .env("SLUICE_CONTROL_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_CONTROL_DATABASE_URL", pg.url("sluice"))
        .env("SLUICE_CONTROL_OPERATOR_KEY", operator_key)
        .env("SLUICE_CONTROL_NODE_KEY", NODE_KEY);
    let mut control = ChildProcess::spawn(
        "sluice-control",
        command,
        Output::LogFile(dir.path().join("control.log")),
    )?;
    control
        .wait_http_ok(&format!("{control_url}/readyz"), READY_TIMEOUT)
        .with_context(|| format!("sluice-control:\n{}", control.log_tail(20)))?;

    let (broker, broker_url) = start_broker(
        &broker_bin,
        &control_url,
        dir.path(),
        "broker.log",
        READY_TIMEOUT,
    )?;
    let spawned = Spawned {
        broker,
        broker_bin,
        control_url: control_url.clone(),
        control,
        _pg: pg,
        dir,
    };
    Ok((spawned, control_url, broker_url))
}

/// Starts the broker (node `n1`, data in `dir/broker`, output in `dir/log`)
/// and waits until it is ready; blocking.
fn start_broker(
    bin: &Path,
    control_url: &str,
    dir: &Path,
    log: &str,
    ready_within: Duration,
) -> anyhow::Result<(ChildProcess, String)> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(bin);
    command
        .env("SLUICE_BROKER_LISTEN", format!("127.0.0.1:{port}"))
        // Any free port: the default (9091) may belong to another broker here.
        .env("SLUICE_BROKER_METRICS_LISTEN", "127.0.0.1:0")
        .env("SLUICE_BROKER_CONTROL_URL", control_url)
        .env("SLUICE_BROKER_NODE_KEY", NODE_KEY)
        .env("SLUICE_BROKER_NODE_ID", "n1")
        .env("SLUICE_BROKER_DATA_DIR", dir.join("broker"));
    let mut broker = ChildProcess::spawn("sluice-broker", command, Output::LogFile(dir.join(log)))?;
    broker
        .wait_http_ok(&format!("{url}/readyz"), ready_within)
        .with_context(|| format!("sluice-broker:\n{}", broker.log_tail(20)))?;
    Ok((broker, url))
}

impl Target {
    /// Prepares the target named by `args`: deployment, tenant, key and the
    /// queue or stream (`name`, default `bench-<random>`).
    pub async fn prepare(
        args: &TargetArgs,
        resource: Resource,
        name: Option<&str>,
    ) -> anyhow::Result<Target> {
        let (kind, spawned, control_url, broker_url, operator_key) = match &args.dev_json {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading {} (is `make dev` running?)", path.display())
                })?;
                let dev: DevJson = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?;
                (
                    "dev-json",
                    None,
                    dev.control_url,
                    dev.broker_url,
                    dev.operator_key,
                )
            }
            None => {
                let operator_key = format!("sk_operator_{}", random_suffix(40));
                let key = operator_key.clone();
                let (spawned, control_url, broker_url) =
                    tokio::task::spawn_blocking(move || spawn_deployment(&key))
                        .await
                        .context("the deployment starter panicked")??;
                (
                    "spawn",
                    Some(spawned),
                    control_url,
                    broker_url,
                    operator_key,
                )
            }
        };
        for url in [&control_url, &broker_url] {
            if !is_loopback(url) {
                bail!("{url} is not a loopback address; sluice-bench only loads local instances");
            }
        }
        let control = Client::new(&control_url);
        let operator = control.with_bearer(&operator_key);
        let tenant = format!("bench-{}", random_suffix(8));
        let created = operator
            .create_tenant(&CreateTenant {
                name: tenant.clone(),
                plan: Some(Plan::Enterprise),
            })
            .await
            .context("creating the tenant")?;
        // The plans' publish-rate quotas (100 msg/s on free, 100k on enterprise)
        // would measure the limiter, not the broker: lift them for this tenant.
        let mut unlimited = QuotasPatch {
            publish_messages_per_second: Some(UNLIMITED_RATE),
            publish_bytes_per_second: Some(UNLIMITED_RATE),
            ..QuotasPatch::default()
        };
        if let Resource::Many {
            queues,
            streams,
            partitions,
        } = resource
        {
            let count = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
            unlimited.max_queues = count(queues);
            unlimited.max_streams = count(streams);
            unlimited.max_partitions = count(partitions);
        }
        operator
            .set_quotas(&tenant, &unlimited)
            .await
            .context("lifting the tenant's quotas")?;
        let admin_key = created.admin_key.key;
        let admin = control.with_bearer(&admin_key);
        let key = admin
            .create_api_key(&CreateApiKey::new(
                "bench",
                &[Scope::Publish, Scope::Consume],
            ))
            .await
            .context("creating the key")?
            .key;
        wait_key_known(&Client::new(&broker_url).with_bearer(&key)).await?;
        let name = match name {
            Some(name) => name.to_string(),
            None => format!("bench-{}", random_suffix(6)),
        };
        match resource {
            Resource::Queue => {
                let declared = admin
                    .declare_queue(&name, &QueueSpec::default())
                    .await
                    .with_context(|| format!("declaring queue {name}"))?;
                if !declared.applied() {
                    bail!("declaring queue {name}: {}", declared.status);
                }
            }
            // 202 (declared, not yet applied by every broker) is fine: the
            // stream mode waits for its partitions itself.
            Resource::Stream { partitions } => {
                let spec = StreamSpec::partitions(partitions as u32);
                admin
                    .declare_stream(&name, &spec)
                    .await
                    .with_context(|| format!("declaring stream {name}"))?;
            }
            Resource::Many { .. } => {}
        }
        Ok(Target {
            kind,
            broker_url,
            control_url,
            admin_key,
            key,
            tenant,
            operator_key,
            name,
            resource,
            spawned,
        })
    }

    /// With a spawned deployment: [`Spawned::restart_broker`], and the
    /// target now points at the new broker.
    pub async fn restart_broker(
        &mut self,
        stop: Stop,
        log: &'static str,
        ready_within: Duration,
    ) -> anyhow::Result<Restarted> {
        let mut spawned = self
            .spawned
            .take()
            .context("restarting the broker needs a deployment started here (--spawn)")?;
        let (spawned, restarted) = tokio::task::spawn_blocking(move || {
            let restarted = spawned.restart_broker(stop, log, ready_within);
            (spawned, restarted)
        })
        .await
        .context("the broker restarter panicked")?;
        self.spawned = Some(spawned);
        let restarted = restarted?;
        self.broker_url = restarted.url.clone();
        Ok(restarted)
    }

    /// The broker's data directory, when this tool started it.
    pub fn broker_data_dir(&self) -> Option<PathBuf> {
        self.spawned.as_ref().map(Spawned::broker_data_dir)
    }

    /// The broker's process id, when this tool started it.
    pub fn broker_pid(&self) -> Option<u32> {
        self.spawned.as_ref().map(Spawned::broker_pid)
    }

    /// Best-effort removal of the queue or stream after a run against `make dev`
    /// (a spawned deployment is thrown away whole). The tenant stays, except
    /// after `Resource::Many`: deleting it is one topology change, where
    /// deleting its thousands of queues would be as many.
    pub async fn cleanup(&self) {
        if self.spawned.is_none() {
            let control = Client::new(&self.control_url);
            let admin = control.with_bearer(&self.admin_key);
            let _ = match self.resource {
                Resource::Many { .. } => control
                    .with_bearer(&self.operator_key)
                    .delete_tenant(&self.tenant)
                    .await
                    .map(|_| ()),
                Resource::Queue => admin
                    .delete_queue(&self.name, &DeleteOptions::default())
                    .await
                    .map(|_| ()),
                Resource::Stream { .. } => admin.delete_stream(&self.name).await.map(|_| ()),
            };
        }
    }

    /// A client of the broker with the run's `publish`+`consume` key and
    /// its own connection pool. Retries are off: a refused request is
    /// counted as the failure it is, not hidden in a latency.
    pub fn data_client(&self) -> Client {
        Client::new(&self.broker_url)
            .with_bearer(&self.key)
            .with_retry(RetryPolicy::NONE)
    }
}

impl Target {
    /// Where the disk baselines write: `explicit`, else the spawned
    /// deployment's directory (the broker's disk), else the system temp dir.
    pub fn baseline_dir(&self, explicit: Option<&Path>) -> PathBuf {
        match (explicit, &self.spawned) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(spawned)) => spawned.dir().to_path_buf(),
            (None, None) => std::env::temp_dir(),
        }
    }
}

/// Key creation does not wait for the brokers: poll `whoami` until the broker knows it.
async fn wait_key_known(broker: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let error = match broker.whoami().await {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        if Instant::now() > deadline {
            bail!("the broker did not learn the new key within 10 s (last answer: {error})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_loopback(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]") || host.starts_with("127.")
}

//! `sluice dev`: Postgres, the control plane and one broker on this machine, with a
//! bootstrap operator key, until Ctrl-C. Everything lives in the state directory, so a
//! second run reuses the data and the keys.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::AtomicBool,
    time::Duration,
};

use anyhow::{Context, bail};
use serde::Serialize;
use sluice_devkit::{ChildProcess, DevkitError, Output, PgCluster, PgOptions};

use crate::{secret_file, shutdown, supervisor::Supervisor};

/// How long a process may take to answer `/readyz` (the control plane runs
/// migrations first; a broker waits for its first topology snapshot).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(clap::Args)]
pub struct DevArgs {
    /// Where the database, logs, operator key and dev.json live.
    #[arg(long, default_value = ".sluice")]
    state_dir: PathBuf,
    /// Port of the control plane on 127.0.0.1 (default: any free port).
    #[arg(long)]
    control_port: Option<u16>,
    /// Port of the first broker's data API on 127.0.0.1 (default: any free port).
    #[arg(long)]
    broker_port: Option<u16>,
    /// How many brokers to run (node ids dev-1, dev-2, ...); queues are spread over them
    /// and any broker serves any queue.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
    brokers: u16,
}

/// What scripts read from `<state-dir>/dev.json` while `sluice dev` runs.
#[derive(Serialize)]
struct DevInfo<'a> {
    control_url: &'a str,
    /// The first broker (any broker serves any queue).
    broker_url: &'a str,
    broker_urls: &'a [String],
    /// Each broker's Prometheus `/metrics`, in the order of `broker_urls`: a
    /// listener of its own, since the series name every tenant.
    metrics_urls: &'a [String],
    operator_key: &'a str,
    database_url: &'a str,
    state_dir: &'a Path,
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    // First, so that a Ctrl-C during startup still stops what was started, in order.
    let shutdown = shutdown::on_signal()?;
    // Check before creating anything: a missing binary is the most likely first error.
    let control_bin = sibling_binary("sluice-control")?;
    let broker_bin = sibling_binary("sluice-broker")?;
    fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let state_dir = fs::canonicalize(&args.state_dir)
        .with_context(|| format!("resolving {}", args.state_dir.display()))?;
    let logs = state_dir.join("logs");
    let operator_key =
        secret_file::load_or_create(&state_dir.join("operator_key"), secret_file::OPERATOR)?;
    let node_key = secret_file::load_or_create(&state_dir.join("node_key"), secret_file::NODE)?;

    let mut supervisor = Supervisor::default();
    eprintln!("starting Postgres in {}", state_dir.join("pg").display());
    let mut pg_options = PgOptions::new(state_dir.join("pg"));
    pg_options.log_file = Some(logs.join("postgres.log"));
    let postgres = PgCluster::start(pg_options).context("starting Postgres")?;
    let database_url = postgres.url("sluice");
    supervisor.add(postgres);

    let port = match args.control_port {
        Some(port) => port,
        None => sluice_devkit::free_port()?,
    };
    let control_url = format!("http://127.0.0.1:{port}");
    eprintln!("starting sluice-control on {control_url}");
    let mut command = Command::new(&control_bin);
    command
        .env("SLUICE_CONTROL_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_CONTROL_DATABASE_URL", &database_url)
        .env("SLUICE_CONTROL_OPERATOR_KEY", &operator_key)
        .env("SLUICE_CONTROL_NODE_KEY", &node_key);
    let mut control = ChildProcess::spawn(
        "sluice-control",
        command,
        Output::LogFile(logs.join("control.log")),
    )?;
    if !wait_ready(&mut control, &format!("{control_url}/readyz"), &shutdown)? {
        return Ok(()); // Ctrl-C during startup; the drops stop control plane, then Postgres
    }
    supervisor.add(control);

    let mut broker_urls = Vec::new();
    let mut metrics_urls = Vec::new();
    for n in 1..=args.brokers {
        let port = match (n, args.broker_port) {
            (1, Some(port)) => port,
            _ => sluice_devkit::free_port()?,
        };
        let url = format!("http://127.0.0.1:{port}");
        // The first broker keeps the directory name a single-broker setup used.
        let data_dir = if n == 1 {
            "broker".to_string()
        } else {
            format!("broker-{n}")
        };
        let metrics_port = sluice_devkit::free_port()?;
        let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
        eprintln!("starting sluice-broker dev-{n} on {url} (metrics {metrics_url})");
        let mut command = Command::new(&broker_bin);
        command
            .env("SLUICE_BROKER_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "SLUICE_BROKER_METRICS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("SLUICE_BROKER_CONTROL_URL", &control_url)
            .env("SLUICE_BROKER_NODE_KEY", &node_key)
            .env("SLUICE_BROKER_NODE_ID", format!("dev-{n}"))
            .env("SLUICE_BROKER_DATA_DIR", state_dir.join(data_dir));
        let mut broker = ChildProcess::spawn(
            format!("sluice-broker dev-{n}"),
            command,
            Output::LogFile(logs.join(format!("broker-{n}.log"))),
        )?;
        if !wait_ready(&mut broker, &format!("{url}/readyz"), &shutdown)? {
            return Ok(());
        }
        supervisor.add(broker);
        broker_urls.push(url);
        metrics_urls.push(metrics_url);
    }
    let broker_url = broker_urls.first().cloned().unwrap_or_default();

    let dev_json = state_dir.join("dev.json");
    let info = DevInfo {
        control_url: &control_url,
        broker_url: &broker_url,
        broker_urls: &broker_urls,
        metrics_urls: &metrics_urls,
        operator_key: &operator_key,
        database_url: &database_url,
        state_dir: &state_dir,
    };
    let json = serde_json::to_string_pretty(&info)?;
    // It holds the operator key: owner-only, like the key files.
    secret_file::write_private(&dev_json, &format!("{json}\n"))?;
    print_banner(&info, &logs, &dev_json);

    let outcome = supervisor.watch(&shutdown);
    supervisor.stop_all();
    // The file describes a running instance; a stale one would send scripts to nowhere.
    let _ = fs::remove_file(&dev_json);
    outcome
}

/// `true` once ready, `false` when cancelled by a signal.
fn wait_ready(
    process: &mut ChildProcess,
    url: &str,
    shutdown: &AtomicBool,
) -> anyhow::Result<bool> {
    match process.wait_http_ok_unless(url, READY_TIMEOUT, shutdown) {
        Ok(()) => Ok(true),
        Err(DevkitError::Cancelled) => Ok(false),
        Err(err) => {
            let name = process.name().to_string();
            Err(err).with_context(|| format!("{name} did not become ready"))
        }
    }
}

/// `name` in the directory of the running `sluice` executable, where cargo puts all the
/// workspace's binaries.
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = env::current_exe().context("locating the sluice executable")?;
    let path = exe
        .parent()
        .map(|dir| dir.join(name))
        .context("the sluice executable has no parent directory")?;
    if !path.is_file() {
        bail!(
            "{} not found next to {}; build it with `cargo build --bins` (or run `make dev`)",
            path.display(),
            exe.display()
        );
    }
    Ok(path)
}

fn print_banner(info: &DevInfo<'_>, logs: &Path, dev_json: &Path) {
    println!();
    println!("Sluice is running (state in {})", info.state_dir.display());
    println!("  control plane  {}", info.control_url);
    println!("  brokers        {}", info.broker_urls.join(" "));
    println!("  metrics        {}", info.metrics_urls.join(" "));
    println!("  operator key   {}", info.operator_key);
    println!("  database       {}", info.database_url);
    println!("  logs           {}", logs.display());
    println!(
        "  try            curl -H 'Authorization: Bearer {}' {}/v1/tenants",
        info.operator_key, info.control_url
    );
    println!(
        "The same as JSON: {}. Ctrl-C stops everything.",
        dev_json.display()
    );
}

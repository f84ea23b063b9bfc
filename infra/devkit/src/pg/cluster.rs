//! `PgCluster`: initdb once, then run the `postgres` server as our child.
//!
//! The server is started directly (not through `pg_ctl`, which daemonizes) so that it is
//! tied to us: the kernel sends it SIGQUIT (immediate shutdown) if we die, and `Drop`
//! asks for a fast shutdown (SIGINT).

use std::{
    fs::{self, DirBuilder},
    os::unix::{fs::DirBuilderExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    thread,
    time::Duration,
};

use nix::sys::signal::Signal;

use crate::{
    error::{DevkitError, IoContext, Result},
    logtail, net,
    process::{deadline, open_log},
    spawn::{self, Target},
};

use super::{binaries::PgBinaries, binaries::tail_of, client, user::RunAs};

/// The database every cluster gets at start.
const DEFAULT_DATABASE: &str = "sluice";
/// How long a fast shutdown may take before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Unix socket paths are limited to about 107 bytes; beyond that we serve TCP only.
const MAX_SOCKET_DIR_LEN: usize = 90;

/// How to start a [`PgCluster`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The cluster's data directory; initialized on first start, reused afterwards.
    pub data_dir: PathBuf,
    /// The TCP port on 127.0.0.1; a free one is picked when `None`.
    pub port: Option<u16>,
    /// For tests only: trade durability for speed (fsync, synchronous commit and full page
    /// writes off). A crash can then corrupt the data directory.
    pub for_tests: bool,
    /// Where the server's output goes; `<data_dir>/server.log` when `None`.
    pub log_file: Option<PathBuf>,
    /// How long to wait for the server to accept connections.
    pub startup_timeout: Duration,
}

impl PgOptions {
    /// Durable defaults for `data_dir`: free port, log in the data directory, 60 s start.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            port: None,
            for_tests: false,
            log_file: None,
            startup_timeout: Duration::from_secs(60),
        }
    }
}

/// A running private Postgres server, stopped when dropped.
#[derive(Debug)]
pub struct PgCluster {
    bins: PgBinaries,
    data_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    server: Option<Child>,
    /// Size of the log when this server started: tails show only its own output.
    log_start: u64,
}

impl PgCluster {
    /// Initializes `options.data_dir` if needed, starts the server, waits until it accepts
    /// connections and creates the database `sluice` if it is missing.
    pub fn start(options: PgOptions) -> Result<Self> {
        let bins = PgBinaries::ensure()?;
        let run_as = RunAs::for_server()?;
        let data_dir = prepare_data_dir(&options.data_dir, run_as.as_ref())?;
        if !data_dir.join("PG_VERSION").exists() {
            initdb(&bins, &data_dir, run_as.as_ref(), options.for_tests)?;
        }
        let log_file = options
            .log_file
            .clone()
            .unwrap_or_else(|| data_dir.join("server.log"));

        // A port we picked may be taken by someone else before the server binds it: then
        // pick another. A port the caller chose is tried once.
        let attempts = if options.port.is_some() { 1 } else { 3 };
        let mut attempt = 0;
        let ((server, log_start), port) = loop {
            attempt += 1;
            let port = match options.port {
                Some(port) => port,
                None => net::free_port()?,
            };
            match start_server(&bins, &data_dir, &log_file, port, run_as.as_ref(), &options) {
                Ok(server) => break (server, port),
                Err(DevkitError::PostgresExited { log_tail, .. })
                    if attempt < attempts && log_tail.contains("could not bind") => {}
                Err(err) => return Err(err),
            }
        };
        let cluster = Self {
            bins,
            data_dir,
            log_file,
            port,
            server: Some(server),
            log_start,
        };
        // pg_isready only says the postmaster answers; a real query proves it serves.
        cluster.sql("postgres", "SELECT 1")?;
        cluster.create_database(DEFAULT_DATABASE)?;
        Ok(cluster)
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The (absolute) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The binaries this cluster runs.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// `postgres://postgres@127.0.0.1:PORT/db` (trust authentication, no password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates the database `name` ([A-Za-z0-9_-]) unless it exists.
    pub fn create_database(&self, name: &str) -> Result<()> {
        client::ensure_database(Some(&self.bins), &self.url("postgres"), name)
    }

    /// Runs `sql` in database `db` with psql; returns the rows, unaligned, one per line.
    pub fn sql(&self, db: &str, sql: &str) -> Result<String> {
        client::run_sql(Some(&self.bins), &self.url(db), sql)
    }

    /// Fails with the exit status and the log tail if the server is no longer running.
    pub fn ensure_running(&mut self) -> Result<()> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        match server
            .try_wait()
            .io_context(|| "checking on postgres".to_string())?
        {
            None => Ok(()),
            Some(status) => Err(DevkitError::PostgresExited {
                data_dir: self.data_dir.clone(),
                status,
                log_tail: logtail::tail(&self.log_file, self.log_start, 30),
            }),
        }
    }

    /// Fast shutdown (SIGINT), SIGKILL if it has not finished after 20 s. Later calls
    /// (and the drop) do nothing.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        let what = format!("Postgres in {}", self.data_dir.display());
        spawn::stop_child(
            &mut server,
            Target::Process,
            Signal::SIGINT,
            SHUTDOWN_GRACE,
            &what,
        )?;
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; the server dies with us regardless.
        let _ = self.stop();
    }
}

/// Creates the data directory (mode 700, as Postgres demands), hands it to the server user
/// and returns its absolute path.
fn prepare_data_dir(dir: &Path, run_as: Option<&RunAs>) -> Result<PathBuf> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .io_context(|| format!("creating data directory {}", dir.display()))?;
    let dir = fs::canonicalize(dir).io_context(|| format!("resolving {}", dir.display()))?;
    if let Some(user) = run_as {
        user.chown(&dir)?;
        user.ensure_can_reach(&dir)?;
    }
    Ok(dir)
}

fn initdb(
    bins: &PgBinaries,
    data_dir: &Path,
    run_as: Option<&RunAs>,
    for_tests: bool,
) -> Result<()> {
    let mut cmd = bins.command("initdb");
    cmd.arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ])
        // initdb fails when it cannot read the current directory (e.g. /root as postgres).
        .current_dir("/");
    if for_tests {
        cmd.arg("--no-sync");
    }
    if let Some(user) = run_as {
        user.apply(&mut cmd);
    }
    let output = cmd
        .output()
        .io_context(|| format!("running initdb -D {}", data_dir.display()))?;
    if !output.status.success() {
        return Err(DevkitError::CommandFailed {
            command: format!("initdb -D {}", data_dir.display()),
            status: output.status,
            output: tail_of(&output.stdout, &output.stderr),
        });
    }
    Ok(())
}

fn start_server(
    bins: &PgBinaries,
    data_dir: &Path,
    log_file: &Path,
    port: u16,
    run_as: Option<&RunAs>,
    options: &PgOptions,
) -> Result<(Child, u64)> {
    let log = open_log(log_file)?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let log_copy = log
        .try_clone()
        .io_context(|| format!("duplicating handle of {}", log_file.display()))?;
    let socket_dir = if data_dir.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        data_dir.as_os_str().to_owned()
    } else {
        "".into()
    };

    let mut cmd = bins.command("postgres");
    cmd.arg("-D")
        .arg(data_dir)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(socket_dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .current_dir(data_dir)
        .stdin(Stdio::null())
        .stdout(log_copy)
        .stderr(log)
        // Own process group: a Ctrl-C in the terminal must not stop the database before
        // the services that use it.
        .process_group(0);
    if options.for_tests {
        for setting in [
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
        ] {
            cmd.args(["-c", setting]);
        }
    }
    if let Some(user) = run_as {
        user.apply(&mut cmd);
    }
    let mut server = spawn::spawn_tied_to_process(cmd, Signal::SIGQUIT)
        .io_context(|| format!("starting postgres -D {}", data_dir.display()))?;

    let end = deadline(options.startup_timeout);
    loop {
        if let Some(status) = server
            .try_wait()
            .io_context(|| "waiting for postgres".to_string())?
        {
            return Err(DevkitError::PostgresExited {
                data_dir: data_dir.to_path_buf(),
                status,
                log_tail: logtail::tail(log_file, log_start, 30),
            });
        }
        if is_ready(bins, port) {
            return Ok((server, log_start));
        }
        if std::time::Instant::now() >= end {
            let what = format!("Postgres in {}", data_dir.display());
            let _ = spawn::stop_child(
                &mut server,
                Target::Process,
                Signal::SIGQUIT,
                Duration::from_secs(5),
                &what,
            );
            return Err(DevkitError::PostgresNotReady {
                data_dir: data_dir.to_path_buf(),
                secs: options.startup_timeout.as_secs(),
                log_tail: logtail::tail(log_file, log_start, 30),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn is_ready(bins: &PgBinaries, port: u16) -> bool {
    bins.command("pg_isready")
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-t",
            "1",
        ])
        .arg("-p")
        .arg(port.to_string())
        .status()
        .is_ok_and(|status| status.success())
}

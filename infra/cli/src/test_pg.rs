//! `sluice test-pg -- <command>`: one private Postgres server for a whole test run.
//!
//! Test binaries would otherwise each start their own cluster (the devkit does that when
//! `SLUICE_TEST_PG_URL` is unset). The server is stopped when the command ends, however
//! it ends, and the data directory is removed.

use std::{
    os::unix::fs::PermissionsExt,
    process::{Command, ExitCode},
    sync::atomic::Ordering,
};

use anyhow::{Context, bail};
use sluice_devkit::{PgCluster, PgOptions};

use crate::shutdown;

#[derive(clap::Args)]
pub struct TestPgArgs {
    /// The command to run, with SLUICE_TEST_PG_URL set (e.g. `cargo test --workspace`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// Runs the command; returns its exit code.
pub fn run(args: TestPgArgs) -> anyhow::Result<ExitCode> {
    let Some((program, program_args)) = args.command.split_first() else {
        bail!("no command given");
    };
    // Ctrl-C reaches the command too (same process group); we only wait for it to end.
    let shutdown = shutdown::on_signal()?;
    let dir = tempfile::Builder::new()
        .prefix("sluice-test-pg-")
        .tempdir()
        .context("creating a temporary directory")?;
    // The Postgres system user must be able to enter it when we run as root.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 755 {}", dir.path().display()))?;
    let mut options = PgOptions::new(dir.path().join("pg"));
    options.for_tests = true;
    let mut cluster = PgCluster::start(options).context("starting the test Postgres server")?;
    let url = cluster.url("postgres");
    eprintln!("test Postgres at {url}");

    let status = Command::new(program)
        .args(program_args)
        .env("SLUICE_TEST_PG_URL", &url)
        .status()
        .with_context(|| format!("running {program}"));
    let stopped = cluster.stop();
    let status = status?;
    stopped.context("stopping the test Postgres server")?;
    if shutdown.load(Ordering::Relaxed) {
        eprintln!("interrupted");
    }
    // A command killed by a signal has no code: report failure.
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1);
    Ok(ExitCode::from(code))
}

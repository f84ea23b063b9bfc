//! A real private Postgres cluster: start, serve, keep its data across restarts, stop.

mod common;

use std::{os::unix::fs::PermissionsExt, time::Duration};

use common::{accepts_connections, psql, reachable_tempdir};
use sluice_devkit::{DevkitError, PgCluster, PgOptions};

#[test]
fn cluster_serves_keeps_its_data_and_stops() -> Result<(), Box<dyn std::error::Error>> {
    let dir = reachable_tempdir()?;
    let data_dir = dir.path().join("pg");

    let mut cluster = PgCluster::start(PgOptions::new(&data_dir))?;
    let bin_dir = cluster.binaries().bin_dir().to_path_buf();
    let port = cluster.port();
    assert_eq!(
        cluster.url("sluice"),
        format!("postgres://postgres@127.0.0.1:{port}/sluice")
    );
    // The default database exists and a real client can write to it.
    psql(
        &bin_dir,
        &cluster.url("sluice"),
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
    );
    cluster.create_database("other")?;
    cluster.create_database("other")?; // idempotent
    assert_eq!(
        psql(&bin_dir, &cluster.url("other"), "SELECT current_database()"),
        "other"
    );
    assert!(cluster.log_file().starts_with(cluster.data_dir()));
    cluster.stop()?;
    assert!(
        !accepts_connections(port),
        "the server still listens after stop"
    );
    assert!(
        !data_dir.join("postmaster.pid").exists(),
        "not a clean shutdown"
    );

    // Same directory, fixed port this time: the data is still there.
    let port = sluice_devkit::free_port()?;
    let mut options = PgOptions::new(&data_dir);
    options.port = Some(port);
    let cluster = PgCluster::start(options)?;
    assert_eq!(cluster.port(), port);
    assert_eq!(
        psql(&bin_dir, &cluster.url("sluice"), "SELECT x FROM kept"),
        "42"
    );
    assert_eq!(cluster.sql("other", "SELECT 1")?, "1");
    drop(cluster);
    assert!(
        !accepts_connections(port),
        "the server still listens after drop"
    );
    Ok(())
}

#[test]
fn a_second_server_on_the_same_directory_fails_with_the_log()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = reachable_tempdir()?;
    let mut first = PgCluster::start(PgOptions::new(dir.path().join("pg")))?;
    let mut options = PgOptions::new(dir.path().join("pg"));
    options.startup_timeout = Duration::from_secs(20);
    let err = PgCluster::start(options).expect_err("two servers on one data directory");
    assert!(
        matches!(err, DevkitError::PostgresExited { ref log_tail, .. } if log_tail.contains("lock file")),
        "{err}"
    );
    first.stop()?;
    Ok(())
}

#[test]
fn an_unreachable_data_directory_is_reported_clearly() -> Result<(), Box<dyn std::error::Error>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(()); // only root switches to the postgres user
    }
    let dir = tempfile::tempdir()?;
    // Like a home directory: the postgres user cannot enter it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    let err = PgCluster::start(PgOptions::new(dir.path().join("pg"))).expect_err("unreachable");
    assert!(
        matches!(err, DevkitError::DataDirUnreachable { .. }),
        "{err}"
    );
    Ok(())
}

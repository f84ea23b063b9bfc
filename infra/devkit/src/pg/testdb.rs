//! Fresh, empty databases for tests: one per call, on one server per test process.
//!
//! With `SLUICE_TEST_PG_URL` set (e.g. by `make test`, which runs one cluster for the
//! whole run), the databases are created on that server. Otherwise the first call starts
//! a private cluster in a temporary directory; it is never dropped, and the kernel stops
//! it (parent-death signal) when the test process exits.

use std::{
    env, fs,
    path::{Path, PathBuf},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use nix::{sys::signal, unistd::Pid};

use crate::error::{DevkitError, IoContext, Result};

use super::{
    binaries::PgBinaries,
    client,
    cluster::{PgCluster, PgOptions},
};

/// The environment variable naming an admin URL of a server the tests may use.
const SERVER_URL_VAR: &str = "SLUICE_TEST_PG_URL";

/// The server all tests of this process use, or why it could not be had.
static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();
static NEXT_DATABASE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct TestServer {
    admin_url: String,
    bins: Option<PgBinaries>,
    /// Held only to keep the private cluster running for the life of the process.
    _cluster: Option<PgCluster>,
}

/// The URL of a new, empty database for one test. Safe to call from many threads.
///
/// # Panics
/// When no server can be started or reached; the message says why (a test cannot go on).
pub fn test_database_url() -> String {
    match try_test_database_url() {
        Ok(url) => url,
        Err(err) => panic!("no test database: {err}"),
    }
}

/// Like [`test_database_url`], but returns the error.
pub fn try_test_database_url() -> Result<String> {
    let server = SERVER
        .get_or_init(|| start_server().map_err(|err| err.to_string()))
        .as_ref()
        .map_err(|reason| DevkitError::TestCluster(reason.clone()))?;
    let name = format!(
        "test_{}_{}_{:08x}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    client::ensure_database(server.bins.as_ref(), &server.admin_url, &name)?;
    client::with_database(&server.admin_url, &name)
}

fn start_server() -> Result<TestServer> {
    if let Ok(admin_url) = env::var(SERVER_URL_VAR) {
        // Check the URL's shape now rather than in every test.
        client::with_database(&admin_url, "postgres")?;
        return Ok(TestServer {
            admin_url,
            bins: PgBinaries::find(),
            _cluster: None,
        });
    }
    let base = env::temp_dir().join(format!("sluice-test-pg-{}", nix::unistd::geteuid()));
    fs::create_dir_all(&base).io_context(|| format!("creating {}", base.display()))?;
    // The Postgres user must be able to traverse this directory when we are root.
    set_mode(&base, 0o755)?;
    remove_stale_data_dirs(&base);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut options = PgOptions::new(base.join(format!("{}-{nanos}", std::process::id())));
    options.for_tests = true;
    let cluster = PgCluster::start(options)?;
    Ok(TestServer {
        admin_url: cluster.url("postgres"),
        bins: Some(cluster.binaries().clone()),
        _cluster: Some(cluster),
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .io_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Data directories are named `<pid>-<nanos>`; those of processes that no longer run are
/// leftovers (their server died with them) and are removed. Best effort.
fn remove_stale_data_dirs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            pid.is_some_and(|pid| signal::kill(Pid::from_raw(pid), None) == Err(nix::Error::ESRCH))
        })
        .map(|entry| entry.path())
        .collect();
    for dir in stale {
        let _ = fs::remove_dir_all(dir);
    }
}

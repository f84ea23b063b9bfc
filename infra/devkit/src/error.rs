//! The one error type of the devkit: every failure says what was being done and, where a
//! process was involved, what it printed, so a failing `make dev` or test explains itself.

use std::{io, path::PathBuf, process::ExitStatus};

/// Everything that can go wrong while starting or stopping the private parts.
#[derive(Debug, thiserror::Error)]
pub enum DevkitError {
    /// No Postgres server binaries on this machine and we may not install them.
    #[error("Postgres server binaries (initdb, postgres) not found; install them with: {command}")]
    PostgresMissing { command: String },

    /// An I/O operation failed; `what` names the operation and the path.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    /// A helper command (initdb, psql, useradd, apt-get, ...) exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{output}")]
    CommandFailed {
        command: String,
        status: ExitStatus,
        output: String,
    },

    /// The Postgres server process exited before it accepted connections.
    #[error(
        "Postgres in {data_dir} exited during startup ({status}); server log tail:\n{log_tail}"
    )]
    PostgresExited {
        data_dir: PathBuf,
        status: ExitStatus,
        log_tail: String,
    },

    /// The Postgres server did not accept connections before the deadline.
    #[error(
        "Postgres in {data_dir} did not accept connections within {secs}s; server log tail:\n{log_tail}"
    )]
    PostgresNotReady {
        data_dir: PathBuf,
        secs: u64,
        log_tail: String,
    },

    /// The unprivileged user that runs Postgres cannot reach the data directory.
    #[error(
        "user `{user}` cannot reach {path}: every parent directory must be traversable (chmod o+x) \
         or the data directory must live elsewhere (e.g. under /tmp)"
    )]
    DataDirUnreachable { user: String, path: PathBuf },

    /// Looking up or creating the system user that runs Postgres failed.
    #[error("system user `{user}`: {reason}")]
    SystemUser { user: String, reason: String },

    /// A URL that the devkit must take apart is not of the expected shape.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// An HTTP endpoint did not answer 200 before the deadline.
    #[error("{url} did not answer 200 within {secs}s (last attempt: {last})")]
    HttpNotReady {
        url: String,
        secs: u64,
        last: String,
    },

    /// A supervised child process exited while we were waiting for it.
    #[error("`{name}` exited ({status}); log tail:\n{log_tail}")]
    ChildExited {
        name: String,
        status: ExitStatus,
        log_tail: String,
    },

    /// A signal could not be delivered to a child process.
    #[error("sending {signal} to {what}: {source}")]
    Signal {
        what: String,
        signal: &'static str,
        #[source]
        source: nix::Error,
    },

    /// A wait was cut short on request (e.g. Ctrl-C during startup).
    #[error("cancelled")]
    Cancelled,

    /// The process-wide test cluster failed to start earlier; every later caller sees why.
    #[error("the shared test Postgres cluster could not be started: {0}")]
    TestCluster(String),
}

/// Short-hand for the devkit's results.
pub type Result<T, E = DevkitError> = std::result::Result<T, E>;

/// Attaches a description of the operation to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn io_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| DevkitError::Io {
            what: what(),
            source,
        })
    }
}

//! Private Postgres clusters and supervised child processes for `sluice dev` and the tests.
//!
//! Everything here is synchronous std code: it starts real processes (the machine's
//! Postgres binaries, our own binaries) and makes sure they die with the process that
//! started them, even when that process is killed with SIGKILL.

mod error;
mod logtail;
mod net;
mod pg;
mod process;
mod spawn;

pub use error::{DevkitError, Result};
pub use net::{free_port, http_get_status, wait_http_ok};
pub use pg::{
    INSTALL_COMMAND, PgBinaries, PgCluster, PgOptions, test_database_url, try_test_database_url,
};
pub use process::{ChildProcess, Output};

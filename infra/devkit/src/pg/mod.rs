//! A private Postgres cluster run from the machine's Postgres binaries, and fresh
//! databases for tests.

mod binaries;
mod client;
mod cluster;
mod testdb;
mod user;

pub use binaries::{INSTALL_COMMAND, PgBinaries};
pub use cluster::{PgCluster, PgOptions};
pub use testdb::{test_database_url, try_test_database_url};

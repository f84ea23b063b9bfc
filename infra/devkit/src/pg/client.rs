//! Talking to a Postgres server through the `psql` binary (the devkit has no Rust driver:
//! it only creates databases and checks that a server answers).

use std::process::Command;

use crate::error::{DevkitError, IoContext, Result};

use super::binaries::{PgBinaries, tail_of};

/// A `psql` command: from the installation when there is one, else from `PATH` (a client
/// against a remote server does not need the server binaries).
fn psql_command(bins: Option<&PgBinaries>) -> Command {
    match bins {
        Some(bins) => bins.command("psql"),
        None => Command::new("psql"),
    }
}

/// Runs `sql` against the database at `url`; returns the rows, unaligned, one per line.
pub(crate) fn run_sql(bins: Option<&PgBinaries>, url: &str, sql: &str) -> Result<String> {
    let mut psql = psql_command(bins);
    psql.args([
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        url,
        "-c",
        sql,
    ])
    // Settings from the environment must not redirect us to another server or database.
    .env_remove("PGSERVICE")
    .env_remove("PGOPTIONS")
    .env("PGCONNECT_TIMEOUT", "5");
    let output = psql
        .output()
        .io_context(|| format!("running psql against {url}"))?;
    if !output.status.success() {
        return Err(DevkitError::CommandFailed {
            command: format!("psql -d {url} -c {sql:?}"),
            status: output.status,
            output: tail_of(&output.stdout, &output.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Creates database `name` on the server at `admin_url` unless it exists already.
pub(crate) fn ensure_database(
    bins: Option<&PgBinaries>,
    admin_url: &str,
    name: &str,
) -> Result<()> {
    check_database_name(name)?;
    let exists = run_sql(
        bins,
        admin_url,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
    )?;
    if exists == "1" {
        return Ok(());
    }
    match run_sql(bins, admin_url, &format!("CREATE DATABASE \"{name}\"")) {
        // Someone else created it between our check and our CREATE: that is what we wanted.
        Err(DevkitError::CommandFailed { output, .. }) if output.contains("already exists") => {
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

/// Database names we accept: they go into SQL and URLs unquoted and unencoded.
pub(crate) fn check_database_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(DevkitError::InvalidUrl {
            url: name.to_string(),
            reason: "database names must be 1-63 characters of [A-Za-z0-9_-]".into(),
        })
    }
}

/// `url` with its database (the path) replaced by `db`; the query string is kept.
pub(crate) fn with_database(url: &str, db: &str) -> Result<String> {
    let invalid = |reason: &str| DevkitError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "postgres" | "postgresql"))
        .ok_or_else(|| invalid("expected postgres://user@host:port/db"))?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.is_empty() {
        return Err(invalid("no host"));
    }
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    Ok(format!("{scheme}://{authority}/{db}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_url() -> Result<()> {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1")?,
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h:1?sslmode=disable", "t1")?,
            "postgresql://u:p@h:1/t1?sslmode=disable"
        );
        assert!(with_database("mysql://h/db", "t1").is_err());
        Ok(())
    }

    #[test]
    fn rejects_names_that_would_need_quoting() {
        assert!(check_database_name("sluice_test_1").is_ok());
        assert!(check_database_name("a'b").is_err());
        assert!(check_database_name("").is_err());
    }
}

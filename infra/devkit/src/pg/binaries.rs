//! Finding the Postgres server binaries, installing them with apt when we are root.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::error::{DevkitError, IoContext, Result};

/// The command that installs the Postgres binaries on Debian and Ubuntu.
pub const INSTALL_COMMAND: &str = "apt-get update && apt-get install -y postgresql";

/// Binaries every cluster needs; a directory without them is not a server installation
/// (`pg_config` from `libpq-dev` alone points at a client-only directory).
const REQUIRED: [&str; 4] = ["initdb", "postgres", "pg_isready", "psql"];

/// A directory holding the Postgres server and client binaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgBinaries {
    bin_dir: PathBuf,
}

impl PgBinaries {
    /// Looks for the binaries: `$SLUICE_PG_BINDIR`, then `pg_config --bindir`, then the
    /// highest version under `/usr/lib/postgresql/*/bin`.
    pub fn find() -> Option<Self> {
        let from_env = env::var_os("SLUICE_PG_BINDIR").map(PathBuf::from);
        from_env
            .into_iter()
            .chain(pg_config_bindir())
            .chain(highest_debian_bindir())
            .find(|dir| is_server_bindir(dir))
            .map(|bin_dir| Self { bin_dir })
    }

    /// Finds the binaries, installing them with apt first when missing and running as
    /// root; otherwise the error carries the command to run.
    pub fn ensure() -> Result<Self> {
        if let Some(found) = Self::find() {
            return Ok(found);
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(DevkitError::PostgresMissing {
                command: "sudo apt-get update && sudo apt-get install -y postgresql".into(),
            });
        }
        eprintln!("sluice-devkit: Postgres binaries not found; running `{INSTALL_COMMAND}`");
        let output = Command::new("sh")
            .args(["-c", INSTALL_COMMAND])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .io_context(|| format!("running `{INSTALL_COMMAND}`"))?;
        if !output.status.success() {
            return Err(DevkitError::CommandFailed {
                command: INSTALL_COMMAND.into(),
                status: output.status,
                output: tail_of(&output.stdout, &output.stderr),
            });
        }
        Self::find().ok_or_else(|| DevkitError::PostgresMissing {
            command: INSTALL_COMMAND.into(),
        })
    }

    /// The directory holding the binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A `Command` for the binary `name` (e.g. `"psql"`) of this installation.
    pub fn command(&self, name: &str) -> Command {
        Command::new(self.bin_dir.join(name))
    }
}

fn is_server_bindir(dir: &Path) -> bool {
    REQUIRED.iter().all(|name| dir.join(name).is_file())
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (output.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

fn highest_debian_bindir() -> Option<PathBuf> {
    let entries = fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            // Versions are "15", "16", or "9.6": compare them numerically, part by part.
            let name = entry.file_name().into_string().ok()?;
            let version: Vec<u32> = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            is_server_bindir(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// The last lines of a command's combined output, for error messages.
pub(crate) fn tail_of(stdout: &[u8], stderr: &[u8]) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_server_installation_on_this_machine() {
        // The devkit's own tests need Postgres; `make test` installs it first.
        let bins = PgBinaries::find().expect("Postgres binaries (run `make test` to install them)");
        assert!(bins.bin_dir().join("postgres").is_file());
    }
}

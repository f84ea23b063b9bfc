//! The unprivileged user that runs Postgres when we are root (initdb and postgres refuse
//! to run as root).

use std::{os::unix::process::CommandExt, path::Path, process::Command};

use nix::unistd::{Gid, Uid, User};

use crate::error::{DevkitError, IoContext, Result};

use super::binaries::tail_of;

/// The system user that owns the cluster; created with `useradd --system` if missing.
const SERVER_USER: &str = "postgres";

/// Credentials to drop to before running a Postgres binary.
#[derive(Clone, Debug)]
pub(crate) struct RunAs {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

impl RunAs {
    /// `Some` when we are root and must switch user, `None` when we already are not root.
    pub fn for_server() -> Result<Option<Self>> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        if let Some(user) = lookup()? {
            return Ok(Some(user));
        }
        let output = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args([
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ])
            .output()
            .io_context(|| format!("running useradd {SERVER_USER}"))?;
        // Another process may have created the user at the same time: look again either way.
        match lookup()? {
            Some(user) => Ok(Some(user)),
            None => Err(DevkitError::SystemUser {
                user: SERVER_USER.into(),
                reason: format!(
                    "useradd failed ({}): {}",
                    output.status,
                    tail_of(&output.stdout, &output.stderr)
                ),
            }),
        }
    }

    /// Makes `command` run as this user.
    pub fn apply(&self, command: &mut Command) {
        command.uid(self.uid.as_raw()).gid(self.gid.as_raw());
    }

    /// Gives `path` (a directory we just created) to this user.
    pub fn chown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
            .io_context(|| format!("chown {} to {}", path.display(), self.name))
    }

    /// Fails clearly when this user cannot reach `dir` (e.g. a data directory under a
    /// mode-700 home), which Postgres would otherwise report deep inside its log.
    pub fn ensure_can_reach(&self, dir: &Path) -> Result<()> {
        let mut test = Command::new("test");
        test.arg("-w").arg(dir).current_dir("/");
        self.apply(&mut test);
        let status = test
            .status()
            .io_context(|| format!("checking that {} can reach {}", self.name, dir.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(DevkitError::DataDirUnreachable {
                user: self.name.clone(),
                path: dir.to_path_buf(),
            })
        }
    }
}

fn lookup() -> Result<Option<RunAs>> {
    let user = User::from_name(SERVER_USER).map_err(|err| DevkitError::SystemUser {
        user: SERVER_USER.into(),
        reason: format!("looking up the user: {err}"),
    })?;
    Ok(user.map(|u| RunAs {
        name: u.name,
        uid: u.uid,
        gid: u.gid,
    }))
}

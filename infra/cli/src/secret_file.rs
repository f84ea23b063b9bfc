//! Secrets of a dev state directory — the bootstrap operator key, the brokers' node
//! key — generated once, then reused, so scripts and sessions keep working across restarts.

use std::{
    fs,
    io::{ErrorKind, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use anyhow::{Context, bail};
use rand::{Rng, distr::Alphanumeric};

const SECRET_LEN: usize = 40;

/// Prefix of the operator key.
pub const OPERATOR: &str = "sk_operator_";
/// Prefix of the node key brokers present to the control plane.
pub const NODE: &str = "sk_node_";

/// Reads the key stored at `path`, or generates and stores one (mode 600):
/// `prefix` followed by 40 alphanumerics.
pub fn load_or_create(path: &Path, prefix: &str) -> anyhow::Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim().to_string();
            if !is_valid(&key, prefix) {
                bail!(
                    "{} does not hold a key ({prefix}<{SECRET_LEN} alphanumerics>); fix or delete it",
                    path.display()
                );
            }
            Ok(key)
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {
            let key = generate(prefix);
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{key}").with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `contents` to `path` readable by its owner only (mode 600), like the
/// keys: for files that hold a key among other things (`dev.json`). A file left
/// from an earlier run is truncated and its mode tightened too.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn generate(prefix: &str) -> String {
    let secret: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect();
    format!("{prefix}{secret}")
}

fn is_valid(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|s| s.len() == SECRET_LEN && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_owner_only_even_when_they_existed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("dev.json");
        fs::write(&path, "old, world-readable and longer")?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        write_private(&path, "{}\n")?;
        assert_eq!(fs::read_to_string(&path)?, "{}\n");
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        fs::remove_file(&path)?;
        write_private(&path, "new")?;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn generated_once_then_reused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("operator_key");
        let key = load_or_create(&path, OPERATOR)?;
        assert!(is_valid(&key, OPERATOR), "{key}");
        assert_eq!(load_or_create(&path, OPERATOR)?, key);
        Ok(())
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_overwritten() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("operator_key");
        fs::write(&path, "garbage")?;
        assert!(load_or_create(&path, OPERATOR).is_err());
        assert_eq!(fs::read_to_string(&path)?, "garbage");
        Ok(())
    }
}

//! The bootstrap operator key of a dev state directory: generated once, then reused, so
//! scripts and browser sessions keep working across restarts.

use std::{
    fs,
    io::{ErrorKind, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use anyhow::{Context, bail};
use rand::{Rng, distr::Alphanumeric};

const PREFIX: &str = "sk_operator_";
const SECRET_LEN: usize = 40;

/// Reads the key stored at `path`, or generates and stores one (mode 600).
pub fn load_or_create(path: &Path) -> anyhow::Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim().to_string();
            if !is_valid(&key) {
                bail!(
                    "{} does not hold an operator key ({PREFIX}<{SECRET_LEN} alphanumerics}}); \
                     fix or delete it",
                    path.display()
                );
            }
            Ok(key)
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {
            let key = generate();
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

fn generate() -> String {
    let secret: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect();
    format!("{PREFIX}{secret}")
}

fn is_valid(key: &str) -> bool {
    key.strip_prefix(PREFIX)
        .is_some_and(|s| s.len() == SECRET_LEN && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("operator_key");
        let key = load_or_create(&path)?;
        assert!(is_valid(&key), "{key}");
        assert_eq!(load_or_create(&path)?, key);
        Ok(())
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_overwritten() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("operator_key");
        fs::write(&path, "garbage")?;
        assert!(load_or_create(&path).is_err());
        assert_eq!(fs::read_to_string(&path)?, "garbage");
        Ok(())
    }
}

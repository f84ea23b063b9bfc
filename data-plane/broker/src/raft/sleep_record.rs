//! The file a sleeping group leaves in its directory: its summary, written
//! durably only after the group was closed and removed durably before it
//! is opened again — so a group whose record exists has not changed since,
//! and a restarted broker can leave it closed. A group directory without a
//! record belongs to a group that was awake when the broker stopped: it is
//! opened at start.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record's file name in the group's directory.
const RECORD: &str = "asleep.json";

/// What a restarting broker finds in a group's directory.
pub enum Found<S> {
    /// No directory: the group was never opened.
    Nothing,
    /// It slept when the broker stopped.
    Asleep(Box<S>),
    /// It was awake (or its record is unreadable): open it now.
    Awake,
}

/// Looks into `dir`; blocking.
pub fn find<S: DeserializeOwned>(dir: &Path) -> Found<S> {
    if !dir.exists() {
        return Found::Nothing;
    }
    let path = dir.join(RECORD);
    let Ok(bytes) = std::fs::read(&path) else {
        return Found::Awake;
    };
    match serde_json::from_slice(&bytes) {
        Ok(summary) => Found::Asleep(Box::new(summary)),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "unreadable sleep record; opening the group");
            Found::Awake
        }
    }
}

/// Writes the record durably; blocking.
pub fn write<S: Serialize>(dir: &Path, summary: &S) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(summary).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{RECORD}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(RECORD))?;
    sync_dir(dir)
}

/// Removes the record durably; true when there was one. Blocking.
pub fn remove(dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(dir.join(RECORD)) {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(true)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

/// [`write`] off the async runtime; a failure is logged, not returned:
/// without the record a restart opens the group — slower, never wrong.
pub async fn keep<S: Serialize + Send + 'static>(dir: &Path, summary: S, group: &str) {
    let dir = dir.to_path_buf();
    let outcome = tokio::task::spawn_blocking(move || write(&dir, &summary)).await;
    let error = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(err)) => err.to_string(),
        Err(err) => err.to_string(),
    };
    tracing::warn!(group, error, "recording a sleeping group failed");
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_removing_it_says_whether_it_was_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("never-opened");
        assert!(matches!(find::<Vec<u64>>(&missing), Found::Nothing));
        assert!(matches!(find::<Vec<u64>>(dir.path()), Found::Awake));
        write(dir.path(), &vec![7u64, 42]).expect("write");
        match find::<Vec<u64>>(dir.path()) {
            Found::Asleep(found) => assert_eq!(*found, vec![7, 42]),
            _ => panic!("the record was not found"),
        }
        assert!(remove(dir.path()).expect("remove"));
        assert!(!remove(dir.path()).expect("remove again"));
        assert!(matches!(find::<Vec<u64>>(dir.path()), Found::Awake));
        std::fs::write(dir.path().join(RECORD), b"{not json").expect("write");
        assert!(matches!(find::<Vec<u64>>(dir.path()), Found::Awake));
    }
}

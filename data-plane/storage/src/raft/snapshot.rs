//! Snapshot files on disk, for the queue and stream state machines.
//!
//! A snapshot is one file `snapshot-<sequence, 20 digits>.snap`, written atomically
//! (temp file, fsync, rename, fsync directory); the highest sequence is current and
//! older ones are deleted once a newer one is durable. The metadata is JSON so any
//! `RaftTypeConfig`'s `SnapshotMeta` fits.
//!
//! ```text
//! off  size  field
//!   0     4  magic      "SLSN"
//!   4     1  version    1
//!   5     4  meta_len   u32
//!   9     -  meta       JSON of openraft's SnapshotMeta
//!         8  data_len   u64
//!         -  data       state machine bytes
//!   end   4  crc32c     of every preceding byte
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, IoContext, Result};
use crate::format::{read_u32, read_u64};
use crate::segment;

const MAGIC: &[u8; 4] = b"SLSN";
const VERSION: u8 = 1;

/// A directory of snapshot files.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
}

fn parse_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

impl SnapshotStore {
    /// Opens (creating) the snapshot directory and removes leftovers of interrupted saves.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        for entry in fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                segment::remove_if_exists(&entry.path())?;
            }
        }
        Ok(SnapshotStore { dir })
    }

    fn sequences(&self) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        for entry in fs::read_dir(&self.dir).ctx(|| format!("list {}", self.dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", self.dir.display()))?;
            if let Some(seq) = entry.file_name().to_str().and_then(parse_seq) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("snapshot-{seq:020}.snap"))
    }

    /// Durably stores a snapshot and makes it the current one; returns its path.
    /// Blocking.
    pub fn save<M: Serialize>(&self, meta: &M, data: &[u8]) -> Result<PathBuf> {
        let meta = serde_json::to_vec(meta).map_err(|e| Error::Metadata {
            path: self.dir.clone(),
            reason: e.to_string(),
        })?;
        let mut bytes = Vec::with_capacity(4 + 1 + 4 + meta.len() + 8 + data.len() + 4);
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&meta);
        bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
        bytes.extend_from_slice(data);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let older = self.sequences()?;
        let seq = older.last().map_or(1, |s| s + 1);
        let path = self.path(seq);
        segment::write_atomically(&self.dir, &path, &bytes)?;
        for s in older {
            segment::remove_if_exists(&self.path(s))?;
        }
        Ok(path)
    }

    /// The current snapshot's metadata and data, if any. A damaged file is an error,
    /// not a silent fallback to an older state.
    pub fn load_latest<M: DeserializeOwned>(&self) -> Result<Option<(M, Vec<u8>)>> {
        let Some(seq) = self.sequences()?.last().copied() else {
            return Ok(None);
        };
        let path = self.path(seq);
        let bytes = fs::read(&path).ctx(|| format!("read {}", path.display()))?;
        let bad = |reason: &str| Error::Corrupt {
            segment: path.clone(),
            position: 0,
            after_offset: None,
            reason: reason.to_string(),
        };
        if bytes.len() < 4 + 1 + 4 + 8 + 4 || &bytes[0..4] != MAGIC || bytes[4] != VERSION {
            return Err(bad("not a snapshot file"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != read_u32(crc, 0) {
            return Err(bad("snapshot CRC mismatch"));
        }
        let meta_len = read_u32(body, 5) as usize;
        let data_at = 9 + meta_len + 8;
        if data_at > body.len() {
            return Err(bad("snapshot metadata length out of range"));
        }
        let data_len = read_u64(body, 9 + meta_len) as usize;
        if data_at + data_len != body.len() {
            return Err(bad("snapshot data length mismatch"));
        }
        let meta = serde_json::from_slice(&body[9..9 + meta_len]).map_err(|e| Error::Metadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some((meta, body[data_at..].to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_replace_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        assert!(store.load_latest::<String>().unwrap().is_none());
        store.save(&"m1".to_string(), b"one").unwrap();
        let p2 = store.save(&"m2".to_string(), b"two").unwrap();
        let (m, d) = store.load_latest::<String>().unwrap().unwrap();
        assert_eq!((m.as_str(), d.as_slice()), ("m2", &b"two"[..]));
        assert_eq!(store.sequences().unwrap().len(), 1);
        let mut bytes = fs::read(&p2).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 1;
        fs::write(&p2, bytes).unwrap();
        assert!(store.load_latest::<String>().unwrap_err().is_corruption());
    }
}

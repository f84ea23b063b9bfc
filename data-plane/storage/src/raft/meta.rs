//! Small durable values next to the log: the Raft vote, the committed log id and the
//! last purged log id.
//!
//! Each lives in its own file of two fixed-size slots written alternately (ping-pong):
//! a store writes the slot *not* holding the current value, with a higher sequence
//! number and a CRC, then fdatasyncs. A torn write damages only the slot being written,
//! so a load (highest valid sequence wins) returns either the old or the new value.
//! That is one fsync per store and no rename, which matters because openraft saves the
//! committed log id often.
//!
//! ```text
//! slot (1024 bytes; slot i at byte i * 1024)
//!   0  8  sequence  u64 (0 = never written)
//!   8  4  len       u32 length of the JSON value
//!  12  4  crc32c    of bytes [0, 12) and the value
//!  16  -  value     JSON
//! ```

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, IoContext, Result};
use crate::format::{read_u32, read_u64};
use crate::segment;

const SLOT: usize = 1024;
const SLOT_HEADER: usize = 16;

/// One durable value in a two-slot file.
#[derive(Debug)]
pub struct DurableCell {
    path: PathBuf,
    file: File,
    /// Sequence number of the current value (0 if none); guarded so concurrent stores
    /// cannot pick the same slot.
    seq: Mutex<u64>,
}

impl DurableCell {
    /// Opens or creates the cell file `name` in `dir`.
    pub fn open(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(name);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        if !existed {
            file.set_len((2 * SLOT) as u64)
                .and_then(|()| file.sync_all())
                .ctx(|| format!("create {}", path.display()))?;
            segment::sync_dir(dir)?;
        }
        let cell = DurableCell {
            path,
            file,
            seq: Mutex::new(0),
        };
        let seq = cell.newest()?.map_or(0, |(seq, _)| seq);
        *cell.seq.lock().unwrap_or_else(|e| e.into_inner()) = seq;
        Ok(cell)
    }

    fn newest(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let mut buf = vec![0u8; 2 * SLOT];
        let n = self
            .file
            .read_at(&mut buf, 0)
            .ctx(|| format!("read {}", self.path.display()))?;
        buf.truncate(n);
        let mut best: Option<(u64, Vec<u8>)> = None;
        for slot in buf.chunks(SLOT) {
            if slot.len() < SLOT_HEADER {
                continue;
            }
            let seq = read_u64(slot, 0);
            let len = read_u32(slot, 8) as usize;
            if seq == 0 || SLOT_HEADER + len > slot.len() {
                continue;
            }
            let value = &slot[SLOT_HEADER..SLOT_HEADER + len];
            let crc = crc32c::crc32c_append(crc32c::crc32c(&slot[..12]), value);
            if crc != read_u32(slot, 12) {
                continue;
            }
            if best.as_ref().is_none_or(|(s, _)| seq > *s) {
                best = Some((seq, value.to_vec()));
            }
        }
        Ok(best)
    }

    /// The stored value, if any.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.newest()? {
            None => Ok(None),
            Some((_, bytes)) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| Error::Metadata {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Durably replaces the value. Blocking (one fdatasync).
    pub fn store<T: Serialize>(&self, value: &T) -> Result<()> {
        let json = serde_json::to_vec(value).map_err(|e| Error::Metadata {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if SLOT_HEADER + json.len() > SLOT {
            return Err(Error::Metadata {
                path: self.path.clone(),
                reason: format!("value of {} bytes does not fit a slot", json.len()),
            });
        }
        let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        let next = *seq + 1;
        let mut slot = Vec::with_capacity(SLOT_HEADER + json.len());
        slot.extend_from_slice(&next.to_le_bytes());
        slot.extend_from_slice(&(json.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&slot[..12]), &json);
        slot.extend_from_slice(&crc.to_le_bytes());
        slot.extend_from_slice(&json);
        let at = (next % 2) * SLOT as u64;
        self.file
            .write_all_at(&slot, at)
            .and_then(|()| self.file.sync_data())
            .ctx(|| format!("write {}", self.path.display()))?;
        *seq = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_torn_slot() {
        let dir = tempfile::tempdir().unwrap();
        let cell = DurableCell::open(dir.path(), "v").unwrap();
        assert_eq!(cell.load::<u64>().unwrap(), None);
        cell.store(&1u64).unwrap();
        cell.store(&2u64).unwrap();
        drop(cell);
        let cell = DurableCell::open(dir.path(), "v").unwrap();
        assert_eq!(cell.load::<u64>().unwrap(), Some(2));
        cell.store(&3u64).unwrap();
        // Tear the newest slot (sequence 3 lives in slot 1): the previous value must come back.
        let f = OpenOptions::new()
            .write(true)
            .open(dir.path().join("v"))
            .unwrap();
        f.write_all_at(b"garbage", (SLOT + SLOT_HEADER) as u64)
            .unwrap();
        let cell = DurableCell::open(dir.path(), "v").unwrap();
        assert_eq!(cell.load::<u64>().unwrap(), Some(2));
        cell.store(&4u64).unwrap();
        assert_eq!(cell.load::<u64>().unwrap(), Some(4));
    }
}

//! Where a deep backlog's pages wait on disk: one immutable file per
//! spilled page in the group's `backlog/` directory.
//!
//! A page file is written once and never changed, so a snapshot can name
//! it instead of copying its records: the snapshot of a deep queue is its
//! page directory, and a restart reads that back without reading a page.
//! A page that comes back into memory may change there (its front is
//! consumed); its file is then *retired*, and deleted once a snapshot that
//! no longer names it is durable ([`SpillStore::delete`]). Files a restored
//! state does not name (spilled after the snapshot, before a crash) are
//! deleted when the store is attached: replaying the log spills afresh.
//!
//! File layout, little-endian: `SLBP`, version (u32 = 1), the page's bases
//! (seq, log index, time: u64 each), the record count (u32), the records
//! (20 bytes each: seq, log index, time offsets, slot, size), and a CRC32C
//! of all that. A file that fails its check is an error, never served.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::page::{Bases, Page, Record};

const MAGIC: &[u8; 4] = b"SLBP";
const VERSION: u32 = 1;
const HEADER: usize = 4 + 4 + 3 * 8 + 4;
const RECORD: usize = 20;
const EXTENSION: &str = "page";

/// A page file that could not be written, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("backlog page file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("backlog page file {path} is corrupt: {why}")]
    Corrupt { path: PathBuf, why: &'static str },
    #[error("backlog page {id} is spilled but this replica has no page directory")]
    Detached { id: u64 },
}

/// Where and how much: a queue keeps at most `memory_pages` pages of its
/// backlog in memory (at least 3: the front, the one read ahead, the back)
/// and spills the rest to `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillConfig {
    pub dir: PathBuf,
    pub memory_pages: usize,
}

/// The directory of one queue's spilled pages.
#[derive(Debug)]
pub(crate) struct SpillStore {
    dir: PathBuf,
    next_id: AtomicU64,
    /// Files written since the last [`SpillStore::sync`]: a snapshot may
    /// name a file only once it is durable.
    unsynced: Mutex<Vec<u64>>,
    /// The first page that could not be read back: the state that needed
    /// it is wrong from then on, and the group must stop and reopen.
    fault: Mutex<Option<String>>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SpillError + '_ {
    move |source| SpillError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SpillStore {
    /// Opens (creating) `dir` and deletes every page file but `keep`.
    pub fn open(dir: &Path, keep: &BTreeSet<u64>) -> Result<SpillStore, SpillError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut highest = keep.last().copied().unwrap_or(0);
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let path = entry.map_err(io_error(dir))?.path();
            let Some(id) = page_id(&path) else { continue };
            highest = highest.max(id);
            if !keep.contains(&id) {
                fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        Ok(SpillStore {
            dir: dir.to_path_buf(),
            next_id: AtomicU64::new(highest + 1),
            unsynced: Mutex::new(Vec::new()),
            fault: Mutex::new(None),
        })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}.{EXTENSION}"))
    }

    /// Writes `page`'s live records to a new file; answers its id.
    pub fn write(&self, page: &Page) -> Result<u64, SpillError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = self.path(id);
        let count = page.live;
        let mut buf = Vec::with_capacity(HEADER + count * RECORD + 4);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        for base in [page.bases.seq, page.bases.log_index, page.bases.at_ms] {
            buf.extend_from_slice(&base.to_le_bytes());
        }
        buf.extend_from_slice(&(count as u32).to_le_bytes());
        for r in page.live_records() {
            for field in [r.seq, r.log_index, r.at, r.slot, r.size] {
                buf.extend_from_slice(&field.to_le_bytes());
            }
        }
        buf.extend_from_slice(&crc32c::crc32c(&buf).to_le_bytes());
        let mut file = File::create(&path).map_err(io_error(&path))?;
        file.write_all(&buf).map_err(io_error(&path))?;
        self.unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        Ok(id)
    }

    /// Records that a page could not be read back (the first such error).
    pub fn fail(&self, err: &SpillError) {
        self.fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| err.to_string());
    }

    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the page spilled as `id` back, whole and checked.
    pub fn read(&self, id: u64) -> Result<Page, SpillError> {
        let path = self.path(id);
        let buf = fs::read(&path).map_err(io_error(&path))?;
        decode(&buf).map_err(|why| SpillError::Corrupt { path, why })
    }

    /// Asks the kernel to start reading `id` now, so that reading it back
    /// when the consumer gets there finds it in the page cache.
    pub fn read_ahead(&self, id: u64) {
        let Ok(file) = File::open(self.path(id)) else {
            // Only a hint: the read that needs the page reports the error.
            return;
        };
        advise_will_need(&file);
    }

    /// Makes every page file written so far durable (files and directory).
    pub fn sync(&self) -> Result<(), SpillError> {
        let ids = std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(|e| e.into_inner()));
        if ids.is_empty() {
            return Ok(());
        }
        for id in ids {
            let path = self.path(id);
            match File::open(&path) {
                Ok(file) => file.sync_data().map_err(io_error(&path))?,
                // Written and deleted again before any snapshot named it.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_error(&path)(err)),
            }
        }
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.dir))
    }

    /// Deletes page files no snapshot and no state names any more. Best
    /// effort: a file left behind is deleted at the next attach.
    pub fn delete(&self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            let _ = fs::remove_file(self.path(id));
        }
    }
}

fn page_id(path: &Path) -> Option<u64> {
    if path.extension()? != EXTENSION {
        return None;
    }
    u64::from_str_radix(path.file_stem()?.to_str()?, 16).ok()
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut raw = [0; 4];
    raw.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(raw)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(raw)
}

fn decode(buf: &[u8]) -> Result<Page, &'static str> {
    if buf.len() < HEADER + 4 {
        return Err("shorter than its header");
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body) != le_u32(crc) {
        return Err("checksum mismatch");
    }
    if &body[..4] != MAGIC || le_u32(&body[4..]) != VERSION {
        return Err("not a version 1 page file");
    }
    let bases = Bases {
        seq: le_u64(&body[8..]),
        log_index: le_u64(&body[16..]),
        at_ms: le_u64(&body[24..]),
    };
    let count = le_u32(&body[32..]) as usize;
    let records = &body[HEADER..];
    if records.len() != count * RECORD {
        return Err("record count does not match its length");
    }
    let mut page = Page::empty(bases);
    page.records.reserve_exact(count);
    for r in records.chunks_exact(RECORD) {
        page.append(Record {
            seq: le_u32(r),
            log_index: le_u32(&r[4..]),
            at: le_u32(&r[8..]),
            slot: le_u32(&r[12..]),
            size: le_u32(&r[16..]),
        });
    }
    Ok(page)
}

#[cfg(target_os = "linux")]
fn advise_will_need(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain advice call on a descriptor we own for its duration.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_will_need(_file: &File) {}

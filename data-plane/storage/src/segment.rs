//! Segment files: naming, sequential batch reading, scanning and index persistence.
//!
//! A segment is `<base offset, 20 digits>.log` plus, once sealed, `<base>.index`. Only
//! the writer appends to the active (last) segment; everything here reads with
//! positional I/O (`pread`) so readers never share a file cursor with the writer.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::{self, BATCH_PREFIX_LEN, Batch, BatchHeader, DecodeError, MAX_BATCH_LEN};
use crate::index::SegmentIndex;

const READ_CHUNK: usize = 256 * 1024;

/// File name of the segment starting at `base`.
pub fn log_file_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// File name of the index of the segment starting at `base`.
pub fn index_file_name(base: u64) -> String {
    format!("{base:020}.index")
}

/// Base offset encoded in a segment or index file name with the given extension.
pub fn parse_base(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Opens a segment file for positional reads and writes.
pub fn open_rw(path: &Path, create: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .ctx(|| format!("open segment {}", path.display()))
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("fsync directory {}", dir.display()))
}

/// Writes `bytes` to `path` so that after a crash the file holds either its old content
/// or all of `bytes`: write a temp file, fsync it, rename it over, fsync the directory.
pub fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let f = File::create(&tmp)?;
        f.write_all_at(bytes, 0)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    };
    write().ctx(|| format!("write {}", path.display()))?;
    sync_dir(dir)
}

/// Writes all of `bufs`, back to back, at `pos` with `pwritev` (no copy into one buffer).
pub fn write_all_vectored_at(file: &File, bufs: &[&[u8]], mut pos: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // IOV_MAX on Linux.
    const MAX_IOVECS: usize = 1024;
    let mut first = 0usize;
    let mut skip = 0usize;
    while first < bufs.len() {
        let iovecs: Vec<libc::iovec> = bufs[first..]
            .iter()
            .take(MAX_IOVECS)
            .enumerate()
            .map(|(k, b)| {
                let b = if k == 0 { &b[skip..] } else { b };
                libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                }
            })
            .collect();
        let offset = libc::off_t::try_from(pos)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position too large"))?;
        // SAFETY: every iovec points into a slice of `bufs`, which outlives the call, and
        // the kernel only reads from them; the fd is valid for the lifetime of `file`.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iovecs.as_ptr(),
                iovecs.len() as libc::c_int,
                offset,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        let mut n = n as usize;
        pos += n as u64;
        // Advance past fully written buffers, and into a partially written one.
        while n > 0 && first < bufs.len() {
            let left = bufs[first].len() - skip;
            if n >= left {
                n -= left;
                first += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
        while first < bufs.len() && bufs[first].len() == skip {
            first += 1;
            skip = 0;
        }
    }
    Ok(())
}

/// Why sequential reading stopped before the requested end.
#[derive(Debug)]
pub enum ReadStop {
    /// The bytes at `position` are not a valid batch.
    Corrupt {
        /// Byte position of the bad batch.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// The last batch runs past the end of the readable range (a torn write).
    Torn {
        /// Byte position of the partial batch.
        position: u64,
    },
}

/// One step of a [`BatchReader`]: the next item and its byte position, `None` at the
/// end of the range, or why reading stopped early.
pub type Step<T> = Result<Option<(u64, T)>, ReadStop>;

/// Sequential batch reader over the byte range `[pos, end)` of one segment file.
pub struct BatchReader<'a> {
    file: &'a File,
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_start: u64,
    /// File position of the next batch.
    pos: u64,
}

impl<'a> BatchReader<'a> {
    /// Reads batches starting at `pos`, never past `end`.
    pub fn new(file: &'a File, pos: u64, end: u64) -> Self {
        BatchReader {
            file,
            end,
            buf: Vec::new(),
            buf_start: pos,
            pos,
        }
    }

    /// Position of the next batch.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Makes `buf` hold at least `need` bytes from `pos`; false if `end` comes first.
    fn ensure(&mut self, need: usize) -> io::Result<bool> {
        let have = (self.buf_start + self.buf.len() as u64).saturating_sub(self.pos) as usize;
        if have >= need {
            return Ok(true);
        }
        if self.pos + need as u64 > self.end {
            return Ok(false);
        }
        let consumed = (self.pos - self.buf_start) as usize;
        self.buf.drain(..consumed);
        self.buf_start = self.pos;
        let want = need.max(READ_CHUNK).min((self.end - self.pos) as usize);
        let old = self.buf.len();
        self.buf.resize(want, 0);
        let read_from = self.pos + old as u64;
        self.file.read_exact_at(&mut self.buf[old..], read_from)?;
        Ok(true)
    }

    /// The next batch's bytes and position, `Ok(None)` at `end`, or why reading stopped.
    pub fn next_bytes(&mut self) -> io::Result<Step<&[u8]>> {
        if self.pos >= self.end {
            return Ok(Ok(None));
        }
        let position = self.pos;
        if !self.ensure(BATCH_PREFIX_LEN)? {
            return Ok(Err(ReadStop::Torn { position }));
        }
        let at = (self.pos - self.buf_start) as usize;
        let len = format::read_u32(&self.buf, at + 8) as usize;
        if !(format::BATCH_HEADER_LEN..=MAX_BATCH_LEN).contains(&len) {
            return Ok(Err(ReadStop::Corrupt {
                position,
                reason: format!("batch length {len} out of range"),
            }));
        }
        if !self.ensure(len)? {
            return Ok(Err(ReadStop::Torn { position }));
        }
        let at = (self.pos - self.buf_start) as usize;
        self.pos += len as u64;
        Ok(Ok(Some((position, &self.buf[at..at + len]))))
    }

    /// The next batch's checked header and position.
    pub fn next_header(&mut self) -> io::Result<Step<BatchHeader>> {
        Ok(match self.next_bytes()? {
            Ok(Some((position, bytes))) => match format::check_batch(bytes) {
                Ok(h) => Ok(Some((position, h))),
                Err(e) => Err(stop_from_decode(position, e)),
            },
            Ok(None) => Ok(None),
            Err(stop) => Err(stop),
        })
    }

    /// The next batch fully decoded (CRC checked) and its position.
    pub fn next_batch(&mut self) -> io::Result<Step<Batch>> {
        Ok(match self.next_bytes()? {
            Ok(Some((position, bytes))) => match format::decode_batch(bytes) {
                Ok((b, _)) => Ok(Some((position, b))),
                Err(e) => Err(stop_from_decode(position, e)),
            },
            Ok(None) => Ok(None),
            Err(stop) => Err(stop),
        })
    }
}

fn stop_from_decode(position: u64, e: DecodeError) -> ReadStop {
    match e {
        DecodeError::Incomplete { .. } => ReadStop::Torn { position },
        DecodeError::Corrupt(reason) => ReadStop::Corrupt { position, reason },
    }
}

/// Outcome of scanning a whole segment.
pub struct Scan {
    /// Index rebuilt over the valid prefix.
    pub index: SegmentIndex,
    /// Bytes of valid batches from the start of the file.
    pub valid_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stop: Option<ReadStop>,
    /// Header of the last valid batch.
    pub last: Option<BatchHeader>,
}

/// Scans `[0, len)` of a segment, checking every batch's CRC and that offsets increase
/// from at least `base`, and rebuilds its index.
pub fn scan(file: &File, path: &Path, base: u64, len: u64, interval: u32) -> Result<Scan> {
    let mut index = SegmentIndex::new(base, interval);
    let mut reader = BatchReader::new(file, 0, len);
    let mut last: Option<BatchHeader> = None;
    loop {
        let next = reader
            .next_header()
            .ctx(|| format!("scan segment {}", path.display()))?;
        match next {
            Ok(Some((position, h))) => {
                let min = last.map_or(base, |l| l.offset + 1);
                if h.offset < min {
                    return Ok(Scan {
                        index,
                        valid_len: position,
                        stop: Some(ReadStop::Corrupt {
                            position,
                            reason: format!("offset {} not after {}", h.offset, min),
                        }),
                        last,
                    });
                }
                index.on_batch(h.offset, position, h.len, h.last_timestamp);
                last = Some(h);
            }
            Ok(None) => {
                return Ok(Scan {
                    index,
                    valid_len: len,
                    stop: None,
                    last,
                });
            }
            Err(stop) => {
                let valid_len = match &stop {
                    ReadStop::Corrupt { position, .. } | ReadStop::Torn { position } => *position,
                };
                return Ok(Scan {
                    index,
                    valid_len,
                    stop: Some(stop),
                    last,
                });
            }
        }
    }
}

/// Turns a read stop inside data that should be intact into a typed corruption error.
pub fn corrupt(path: &Path, stop: ReadStop, after_offset: Option<u64>) -> Error {
    let (position, reason) = match stop {
        ReadStop::Corrupt { position, reason } => (position, reason),
        ReadStop::Torn { position } => (position, "batch runs past the end of the segment".into()),
    };
    Error::Corrupt {
        segment: path.to_path_buf(),
        position,
        after_offset,
        reason,
    }
}

/// Reads the header of the batch at `position`, checking its CRC.
pub fn header_at(file: &File, path: &Path, position: u64, end: u64) -> Result<BatchHeader> {
    let mut r = BatchReader::new(file, position, end);
    match r.next_header().ctx(|| format!("read {}", path.display()))? {
        Ok(Some((_, h))) => Ok(h),
        Ok(None) => Err(corrupt(path, ReadStop::Torn { position }, None)),
        Err(stop) => Err(corrupt(path, stop, None)),
    }
}

/// Paths of a segment's files.
#[derive(Clone, Debug)]
pub struct SegmentPaths {
    /// The `.log` file.
    pub log: PathBuf,
    /// The `.index` file.
    pub index: PathBuf,
}

impl SegmentPaths {
    /// Paths of the segment `base` in `dir`.
    pub fn new(dir: &Path, base: u64) -> Self {
        SegmentPaths {
            log: dir.join(log_file_name(base)),
            index: dir.join(index_file_name(base)),
        }
    }
}

/// Removes a file, treating "already gone" as success.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_write_writes_everything_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = open_rw(&dir.path().join("v"), true).unwrap();
        let parts: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![i as u8; (i % 7) as usize])
            .collect();
        let bufs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        write_all_vectored_at(&f, &bufs, 5).unwrap();
        let mut got = vec![0u8; parts.iter().map(Vec::len).sum::<usize>()];
        f.read_exact_at(&mut got, 5).unwrap();
        assert_eq!(got, parts.concat());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(log_file_name(42), "00000000000000000042.log");
        assert_eq!(parse_base(&log_file_name(42), "log"), Some(42));
        assert_eq!(
            parse_base(&index_file_name(u64::MAX), "index"),
            Some(u64::MAX)
        );
        assert_eq!(parse_base("42.log", "log"), None);
        assert_eq!(parse_base("0000000000000000004x.log", "log"), None);
        assert_eq!(parse_base(&log_file_name(7), "index"), None);
    }
}

//! Reading a segment log: batches by offset or timestamp, raw file ranges for
//! zero-copy sends, and full verification.
//!
//! Reads take the state lock only to copy out a file handle and a byte range, then use
//! positional reads, so they run concurrently with the writer and with each other. They
//! are synchronous: from async code, expect page-cache speed, or wrap large reads in
//! `spawn_blocking`.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{IoContext, Result};
use crate::format::Batch;
use crate::log::SegmentLog;
use crate::segment::{self, BatchReader, ReadStop};
use crate::state::Visibility;

/// A byte range of a segment file holding whole batches, for `sendfile`/`splice` or an
/// upload without re-encoding. The bytes are in the on-disk batch format (see
/// [`crate::format`]); their CRCs have not been checked by this call.
#[derive(Clone, Debug)]
pub struct SegmentSlice {
    /// The segment file.
    pub path: PathBuf,
    /// An open handle on it (stays valid even if retention deletes the file).
    pub file: Arc<File>,
    /// Byte position of the first batch.
    pub position: u64,
    /// Length in bytes (whole batches).
    pub len: u64,
    /// Offset of the first batch in the range.
    pub first_offset: u64,
    /// Offset to ask for next (after the last batch in the range).
    pub next_offset: u64,
}

impl SegmentSlice {
    /// The slice's bytes, read from the file with one positional read: whole
    /// batches exactly as stored (nothing decoded, CRCs unchecked).
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = usize::try_from(self.len)
            .map_err(|_| std::io::Error::other(format!("{} bytes do not fit", self.len)))
            .ctx(|| format!("slice of {}", self.path.display()))?;
        let mut bytes = vec![0; len];
        self.file
            .read_exact_at(&mut bytes, self.position)
            .ctx(|| format!("read {}", self.path.display()))?;
        Ok(bytes)
    }
}

struct Located {
    path: PathBuf,
    file: Arc<File>,
    base: u64,
    position: u64,
    end: u64,
}

impl SegmentLog {
    /// The segment holding `offset` (or the first batch after it), under `vis`.
    fn locate(&self, offset: u64, vis: Visibility) -> Option<Located> {
        let st = self.shared.read();
        let offset = offset.max(st.start_offset);
        let next = match vis {
            Visibility::Acked => st.acked_next,
            Visibility::Written => st.written_next,
        };
        if offset >= next {
            return None;
        }
        let seg = st
            .segments
            .range(..=offset)
            .next_back()
            .or_else(|| st.segments.iter().next())
            .map(|(_, s)| s)?;
        Some(Located {
            path: seg.paths.log.clone(),
            file: seg.file.clone(),
            base: seg.base,
            position: seg.index.lookup(offset),
            end: seg.visible_len(vis),
        })
    }

    /// Asks the kernel to read the acknowledged batches from `from` up to
    /// `to` (exclusive) into the page cache in the background
    /// (`posix_fadvise(WILLNEED)`; positions from the sparse index, so a
    /// little more than asked). Reads that follow find them there: a consumer
    /// draining entries that fell out of the cache does not wait on the disk
    /// for each one. A hint: it reads nothing itself and reports nothing.
    pub fn read_ahead(&self, from: u64, to: u64) {
        let mut want = from;
        while want < to {
            let Some(loc) = self.locate(want, Visibility::Acked) else {
                return;
            };
            let next = self.next_segment(loc.base);
            let end = match next {
                Some(next_base) if next_base <= to => loc.end,
                _ => self
                    .locate(to, Visibility::Acked)
                    .filter(|end| end.base == loc.base)
                    .map_or(loc.end, |end| end.position.max(loc.position)),
            };
            advise_will_need(&loc.file, loc.position, end.saturating_sub(loc.position));
            match next {
                Some(next_base) if next_base > want => want = next_base,
                _ => return,
            }
        }
    }

    /// Segment base after `base`, if any.
    fn next_segment(&self, base: u64) -> Option<u64> {
        let st = self.shared.read();
        st.segments.range(base + 1..).next().map(|(b, _)| *b)
    }

    /// Acknowledged batches from `offset` on (from the start offset, if `offset` is
    /// below it), about `max_bytes` of them and always at least one when any exists.
    /// Every batch's CRC is checked; a bad one is an [`crate::Error::Corrupt`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<Batch>> {
        self.read_with(offset, max_bytes, Visibility::Acked)
    }

    /// [`Self::read`] with an explicit visibility.
    pub fn read_with(&self, offset: u64, max_bytes: usize, vis: Visibility) -> Result<Vec<Batch>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut want = offset;
        while let Some(loc) = self.locate(want, vis) {
            let start = self.start_offset();
            let want_here = want.max(start);
            let mut reader = BatchReader::new(&loc.file, loc.position, loc.end);
            let mut last_good = None;
            loop {
                let next = reader
                    .next_batch()
                    .ctx(|| format!("read {}", loc.path.display()))?;
                match next {
                    Ok(Some((_, batch))) => {
                        last_good = Some(batch.offset);
                        if batch.offset < want_here {
                            continue;
                        }
                        bytes += batch.encoded_len();
                        want = batch.offset + 1;
                        out.push(batch);
                        if bytes >= max_bytes {
                            return Ok(out);
                        }
                    }
                    Ok(None) => break,
                    Err(stop) => return Err(segment::corrupt(&loc.path, stop, last_good)),
                }
            }
            match self.next_segment(loc.base) {
                Some(b) => want = want.max(b),
                None => break,
            }
        }
        Ok(out)
    }

    /// A file range of whole acknowledged batches starting at `offset` (or the first
    /// batch after it), within one segment, about `max_bytes` long (at least one batch).
    pub fn slice(&self, offset: u64, max_bytes: u64) -> Result<Option<SegmentSlice>> {
        let mut want = offset;
        while let Some(loc) = self.locate(want, Visibility::Acked) {
            let want_here = want.max(self.start_offset());
            let mut reader = BatchReader::new(&loc.file, loc.position, loc.end);
            let mut first: Option<(u64, u64)> = None;
            let mut end = loc.position;
            let mut next_offset = want_here;
            loop {
                let here = reader.position();
                let next = reader
                    .next_header()
                    .ctx(|| format!("read {}", loc.path.display()))?;
                match next {
                    Ok(Some((_, h))) => {
                        if h.offset < want_here {
                            continue;
                        }
                        if let Some((_, pos)) = first
                            && here + u64::from(h.len) - pos > max_bytes
                        {
                            break;
                        }
                        first.get_or_insert((h.offset, here));
                        end = here + u64::from(h.len);
                        next_offset = h.offset + 1;
                    }
                    Ok(None) => break,
                    Err(stop) => return Err(segment::corrupt(&loc.path, stop, None)),
                }
            }
            if let Some((first_offset, position)) = first {
                return Ok(Some(SegmentSlice {
                    path: loc.path,
                    file: loc.file,
                    position,
                    len: end - position,
                    first_offset,
                    next_offset,
                }));
            }
            match self.next_segment(loc.base) {
                Some(b) => want = want.max(b),
                None => break,
            }
        }
        Ok(None)
    }

    /// Offset of the first acknowledged batch whose (largest) timestamp is `>= ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>> {
        let candidates: Vec<(PathBuf, Arc<File>, u64, u64)> = {
            let st = self.shared.read();
            st.segments
                .values()
                .filter(|s| s.index.max_timestamp >= ts)
                .map(|s| {
                    let from = s.index.time_scan_start(ts).max(st.start_offset);
                    (
                        s.paths.log.clone(),
                        s.file.clone(),
                        s.index.lookup(from),
                        s.acked_len,
                    )
                })
                .collect()
        };
        let start = self.start_offset();
        for (path, file, position, end) in candidates {
            let mut reader = BatchReader::new(&file, position, end);
            loop {
                match reader
                    .next_header()
                    .ctx(|| format!("read {}", path.display()))?
                {
                    Ok(Some((_, h))) if h.offset >= start && h.last_timestamp >= ts => {
                        return Ok(Some(h.offset));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(stop) => return Err(segment::corrupt(&path, stop, None)),
                }
            }
        }
        Ok(None)
    }

    /// Reads every acknowledged byte of every segment and checks every CRC; the first
    /// damage found is an [`crate::Error::Corrupt`] naming the segment and position.
    pub fn verify(&self) -> Result<()> {
        let segments: Vec<(PathBuf, Arc<File>, u64, u64)> = {
            let st = self.shared.read();
            st.segments
                .values()
                .map(|s| (s.paths.log.clone(), s.file.clone(), s.base, s.acked_len))
                .collect()
        };
        for (path, file, base, len) in segments {
            let mut reader = BatchReader::new(&file, 0, len);
            let mut last: Option<u64> = None;
            loop {
                match reader
                    .next_batch()
                    .ctx(|| format!("verify {}", path.display()))?
                {
                    Ok(Some((position, b))) => {
                        if b.offset < last.map_or(base, |l| l + 1) {
                            return Err(segment::corrupt(
                                &path,
                                ReadStop::Corrupt {
                                    position,
                                    reason: format!("offset {} out of order", b.offset),
                                },
                                last,
                            ));
                        }
                        last = Some(b.offset);
                    }
                    Ok(None) => break,
                    Err(stop) => return Err(segment::corrupt(&path, stop, last)),
                }
            }
        }
        Ok(())
    }
}

fn advise_will_need(file: &File, position: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(position), Ok(len)) = (libc::off_t::try_from(position), libc::off_t::try_from(len))
    else {
        return;
    };
    if len == 0 {
        return;
    }
    // SAFETY: an advice call on a descriptor that lives through the call.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), position, len, libc::POSIX_FADV_WILLNEED);
    }
}

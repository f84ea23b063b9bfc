//! Sparse offset index and time index of one segment, in memory and as a `.index` file.
//!
//! The index is derived data: it is rebuilt from the segment whenever its file is
//! missing, fails its CRC, or describes a different segment length (stale). The active
//! segment's index lives only in memory; it is written when the segment is sealed.
//!
//! ```text
//! .index file (version 1), little-endian
//! off  size  field
//!   0     4  magic            "SLIX"
//!   4     1  version          1
//!   5     8  base_offset      u64   must match the segment file name
//!  13     8  log_len          u64   byte length of the .log this index describes
//!  21     8  next_offset      u64   last batch offset + 1 (base_offset if empty)
//!  29     8  max_timestamp    i64   largest batch timestamp (i64::MIN if empty)
//!  37     8  last_position    u64   byte position of the last batch (u64::MAX if empty)
//!  45     4  offset_entries   u32
//!  49     4  time_entries     u32
//!  53     -  offset entries   (offset u64, position u32) each
//!         -  time entries     (max timestamp so far i64, offset u64) each
//!   end   4  crc32c           of every preceding byte
//! ```

use crate::format::{read_i64, read_u32, read_u64};

const MAGIC: &[u8; 4] = b"SLIX";
const VERSION: u8 = 1;
const FIXED_LEN: usize = 53;

/// Where a batch lives, as far as the index is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Batch offset.
    pub offset: u64,
    /// Byte position of the batch in the segment file.
    pub position: u32,
}

/// One time index point: every batch up to and including `offset` has a timestamp
/// of at most `max_timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp seen up to `offset`.
    pub max_timestamp: i64,
    /// The batch at which it was recorded.
    pub offset: u64,
}

/// Sparse offset and time index of one segment, plus the facts a segment needs to be
/// described without scanning it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentIndex {
    base_offset: u64,
    interval_bytes: u32,
    bytes_since_entry: u64,
    entries: Vec<IndexEntry>,
    times: Vec<TimeEntry>,
    /// Largest batch timestamp so far (`i64::MIN` when empty).
    pub max_timestamp: i64,
    /// Offset after the last batch (`base_offset` when empty).
    pub next_offset: u64,
    /// Position of the last batch, if any.
    pub last_position: Option<u64>,
}

impl SegmentIndex {
    /// An empty index for a segment starting at `base_offset`.
    pub fn new(base_offset: u64, interval_bytes: u32) -> Self {
        SegmentIndex {
            base_offset,
            interval_bytes: interval_bytes.max(1),
            bytes_since_entry: 0,
            entries: Vec::new(),
            times: Vec::new(),
            max_timestamp: i64::MIN,
            next_offset: base_offset,
            last_position: None,
        }
    }

    /// Records a batch appended at `position`. Batches must come in offset order.
    pub fn on_batch(&mut self, offset: u64, position: u64, len: u32, last_timestamp: i64) {
        let due =
            self.entries.is_empty() || self.bytes_since_entry >= u64::from(self.interval_bytes);
        if due {
            // Positions fit in u32 because segments roll well below 4 GiB (checked at open).
            self.entries.push(IndexEntry {
                offset,
                position: position as u32,
            });
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(len);
        self.max_timestamp = self.max_timestamp.max(last_timestamp);
        if due
            && self
                .times
                .last()
                .is_none_or(|t| self.max_timestamp > t.max_timestamp)
        {
            self.times.push(TimeEntry {
                max_timestamp: self.max_timestamp,
                offset,
            });
        }
        self.next_offset = offset + 1;
        self.last_position = Some(position);
    }

    /// Position from which to scan for `offset`: the last indexed batch at or before it.
    pub fn lookup(&self, offset: u64) -> u64 {
        let i = self.entries.partition_point(|e| e.offset <= offset);
        if i == 0 {
            0
        } else {
            u64::from(self.entries[i - 1].position)
        }
    }

    /// Offset from which to scan for the first batch with a timestamp `>= ts`: every
    /// batch before it is known to be older.
    pub fn time_scan_start(&self, ts: i64) -> u64 {
        let i = self.times.partition_point(|t| t.max_timestamp < ts);
        if i == 0 {
            self.base_offset
        } else {
            self.times[i - 1].offset + 1
        }
    }

    /// Segment base offset.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Whether no batch was recorded.
    pub fn is_empty(&self) -> bool {
        self.last_position.is_none()
    }

    /// The sparse offset entries.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The time entries.
    pub fn time_entries(&self) -> &[TimeEntry] {
        &self.times
    }

    /// Serializes the index for a segment of `log_len` bytes.
    pub fn to_bytes(&self, log_len: u64) -> Vec<u8> {
        let mut b =
            Vec::with_capacity(FIXED_LEN + self.entries.len() * 12 + self.times.len() * 16 + 4);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&self.base_offset.to_le_bytes());
        b.extend_from_slice(&log_len.to_le_bytes());
        b.extend_from_slice(&self.next_offset.to_le_bytes());
        b.extend_from_slice(&self.max_timestamp.to_le_bytes());
        b.extend_from_slice(&self.last_position.unwrap_or(u64::MAX).to_le_bytes());
        b.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.times.len() as u32).to_le_bytes());
        for e in &self.entries {
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.extend_from_slice(&e.position.to_le_bytes());
        }
        for t in &self.times {
            b.extend_from_slice(&t.max_timestamp.to_le_bytes());
            b.extend_from_slice(&t.offset.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses an index file; `None` when it is damaged or does not describe the segment
    /// `base_offset` of `log_len` bytes (the caller then rebuilds it).
    pub fn from_bytes(
        b: &[u8],
        base_offset: u64,
        log_len: u64,
        interval_bytes: u32,
    ) -> Option<Self> {
        if b.len() < FIXED_LEN + 4 || &b[0..4] != MAGIC || b[4] != VERSION {
            return None;
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32c::crc32c(body) != read_u32(crc, 0) {
            return None;
        }
        if read_u64(b, 5) != base_offset || read_u64(b, 13) != log_len {
            return None;
        }
        let n_entries = read_u32(b, 45) as usize;
        let n_times = read_u32(b, 49) as usize;
        if FIXED_LEN + n_entries.checked_mul(12)? + n_times.checked_mul(16)? != body.len() {
            return None;
        }
        let mut at = FIXED_LEN;
        let mut entries = Vec::with_capacity(n_entries);
        for _ in 0..n_entries {
            entries.push(IndexEntry {
                offset: read_u64(b, at),
                position: read_u32(b, at + 8),
            });
            at += 12;
        }
        let mut times = Vec::with_capacity(n_times);
        for _ in 0..n_times {
            times.push(TimeEntry {
                max_timestamp: read_i64(b, at),
                offset: read_u64(b, at + 8),
            });
            at += 16;
        }
        let last_position = match read_u64(b, 37) {
            u64::MAX => None,
            p => Some(p),
        };
        Some(SegmentIndex {
            base_offset,
            interval_bytes: interval_bytes.max(1),
            // A sealed segment's index never grows again.
            bytes_since_entry: 0,
            entries,
            times,
            max_timestamp: read_i64(b, 29),
            next_offset: read_u64(b, 21),
            last_position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an index over batches of 100 bytes at offsets base, base+2, ... (gaps
    /// included on purpose) and timestamps that go backwards now and then.
    fn build(n: u64) -> (SegmentIndex, Vec<(u64, u64, i64)>) {
        let mut idx = SegmentIndex::new(1000, 250);
        let mut batches = Vec::new();
        for i in 0..n {
            let offset = 1000 + i * 2;
            let ts = (i as i64 * 10) - if i % 3 == 0 { 15 } else { 0 };
            idx.on_batch(offset, i * 100, 100, ts);
            batches.push((offset, i * 100, ts));
        }
        (idx, batches)
    }

    #[test]
    fn lookup_at_every_boundary() {
        let (idx, batches) = build(50);
        for target in 990..1110 {
            let pos = idx.lookup(target);
            // The position must be at or before the first batch with offset >= target.
            let want = batches
                .iter()
                .find(|b| b.0 >= target)
                .map_or(u64::MAX, |b| b.1);
            assert!(pos <= want, "target {target}: {pos} > {want}");
            // ... and it must be a batch start no further back than one interval.
            assert!(batches.iter().any(|b| b.1 == pos));
            if want != u64::MAX {
                assert!(want - pos <= 300, "target {target}: scan too long");
            }
        }
    }

    #[test]
    fn time_scan_start_never_skips_a_match() {
        let (idx, batches) = build(50);
        for ts in -20..520 {
            let start = idx.time_scan_start(ts);
            let first_match = batches.iter().find(|b| b.2 >= ts).map(|b| b.0);
            if let Some(m) = first_match {
                assert!(start <= m, "ts {ts}: start {start} skips match {m}");
            }
        }
    }

    #[test]
    fn file_round_trip_and_staleness() {
        let (idx, _) = build(20);
        let bytes = idx.to_bytes(2000);
        let back = SegmentIndex::from_bytes(&bytes, 1000, 2000, 250).unwrap();
        assert_eq!(back.entries(), idx.entries());
        assert_eq!(back.time_entries(), idx.time_entries());
        assert!(idx.time_entries().len() > 3);
        assert_eq!(
            (back.next_offset, back.max_timestamp, back.last_position),
            (idx.next_offset, idx.max_timestamp, idx.last_position)
        );
        assert_eq!(SegmentIndex::from_bytes(&bytes, 1000, 2100, 250), None);
        assert_eq!(SegmentIndex::from_bytes(&bytes, 999, 2000, 250), None);
        let mut bad = bytes.clone();
        bad[60] ^= 1;
        assert_eq!(SegmentIndex::from_bytes(&bad, 1000, 2000, 250), None);
        assert_eq!(
            SegmentIndex::from_bytes(&bytes[..10], 1000, 2000, 250),
            None
        );
        let empty = SegmentIndex::new(5, 10);
        assert_eq!(
            SegmentIndex::from_bytes(&empty.to_bytes(0), 5, 0, 10),
            Some(empty)
        );
    }
}

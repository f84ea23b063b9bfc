//! Record batch codec: the exact bytes a segment file is made of.
//!
//! A segment file is a concatenation of batches and nothing else, so a sealed segment
//! can be shipped (to S3, over sendfile) and decoded without any side file. One batch is
//! one Raft entry; its offset *is* the Raft index. All integers are little-endian.
//!
//! ```text
//! batch (format version / magic 1)
//! off  size  field
//!   0     8  offset           u64   Raft index of the entry = offset of the batch
//!   8     4  batch_len        u32   length of the whole batch, these 12 bytes included
//!  12     1  magic            u8    format version, currently 1
//!  13     4  crc              u32   CRC32C of bytes [17, batch_len) followed by bytes [0, 12)
//!  17     2  attributes       u16   bits 0-1: kind (0 data, 1 blank, 2 membership); others 0
//!  19     8  term             u64   Raft term of the leader that proposed the entry
//!  27     8  leader           u64   node id of that leader
//!  35     8  first_timestamp  i64   ms since the Unix epoch, of the first record
//!  43     8  last_timestamp   i64   largest record timestamp in the batch
//!  51     4  record_count     u32
//!  55     -  records          record_count times:
//!
//! record
//!   0     4  record_len       u32   bytes that follow this field
//!   4     8  timestamp        i64
//!  12     4  key_len          u32   0xFFFF_FFFF = no key
//!         -  key
//!         2  header_count     u16
//!            per header: name_len u16, name (UTF-8), value_len u32, value
//!         4  value_len        u32
//!         -  value
//! ```
//!
//! The CRC covers the offset and length but not the magic byte, so the writer can
//! stamp the offset after the appender (on its own task) has encoded and checksummed
//! the body: it only extends the body CRC over the 12-byte prefix.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

mod record;

pub use record::Record;
use record::{Cursor, decode_record, encode_record};

/// Current (and only) batch format version.
pub const MAGIC: u8 = 1;
/// Bytes of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 55;
/// Bytes of the offset + length prefix, enough to skip a batch.
pub const BATCH_PREFIX_LEN: usize = 12;
/// Upper bound on any batch; larger lengths are treated as corruption when scanning.
pub const MAX_BATCH_LEN: usize = 64 * 1024 * 1024;

const KIND_MASK: u16 = 0b11;

/// What a batch carries. Raft's blank and membership entries are batches too, so the
/// log has no holes in its offset sequence that Raft would not expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BatchKind {
    /// Application records (publishes, acks, stream records ...).
    Data,
    /// A Raft blank (no-op) entry; carries no records.
    Blank,
    /// A Raft membership change; one record whose value is the serialized membership.
    Membership,
}

impl BatchKind {
    fn bits(self) -> u16 {
        match self {
            BatchKind::Data => 0,
            BatchKind::Blank => 1,
            BatchKind::Membership => 2,
        }
    }

    fn from_bits(bits: u16) -> Option<Self> {
        match bits {
            0 => Some(BatchKind::Data),
            1 => Some(BatchKind::Blank),
            2 => Some(BatchKind::Membership),
            _ => None,
        }
    }
}

/// A decoded batch: one Raft entry, one offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The batch's offset (Raft index).
    pub offset: u64,
    /// Raft term of the proposing leader (0 outside Raft).
    pub term: u64,
    /// Node id of the proposing leader (0 outside Raft).
    pub leader: u64,
    /// What the batch carries.
    pub kind: BatchKind,
    /// Timestamp of the first record (or of creation, for a batch without records).
    pub first_timestamp: i64,
    /// Largest record timestamp (or of creation, for a batch without records).
    pub last_timestamp: i64,
    /// The records, in order.
    pub records: Vec<Record>,
}

impl Batch {
    /// A data batch outside Raft (term and leader 0); the log assigns the offset.
    pub fn data(records: Vec<Record>) -> Self {
        Batch::new(BatchKind::Data, 0, 0, records)
    }

    /// A batch whose timestamps are derived from its records (now, when it has none).
    pub fn new(kind: BatchKind, term: u64, leader: u64, records: Vec<Record>) -> Self {
        let (first, last) = match records.first() {
            Some(first) => (
                first.timestamp,
                records
                    .iter()
                    .map(|r| r.timestamp)
                    .max()
                    .unwrap_or(first.timestamp),
            ),
            None => {
                let now = now_ms();
                (now, now)
            }
        };
        Batch {
            offset: 0,
            term,
            leader,
            kind,
            first_timestamp: first,
            last_timestamp: last,
            records,
        }
    }

    /// Size of the encoded batch in bytes.
    pub fn encoded_len(&self) -> usize {
        BATCH_HEADER_LEN + self.records.iter().map(Record::encoded_len).sum::<usize>()
    }

    /// Encodes the batch with its current offset.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut encoded = EncodedBatch::encode(self)?;
        encoded.stamp_offset(self.offset);
        Ok(encoded.into_bytes())
    }
}

/// The fixed header of a batch, readable without decoding its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset (Raft index).
    pub offset: u64,
    /// Whole batch length in bytes.
    pub len: u32,
    /// Raft term.
    pub term: u64,
    /// Proposing leader.
    pub leader: u64,
    /// Kind of batch.
    pub kind: BatchKind,
    /// First record timestamp.
    pub first_timestamp: i64,
    /// Largest record timestamp.
    pub last_timestamp: i64,
    /// Number of records.
    pub record_count: u32,
}

/// A batch encoded by its appender, waiting for the writer to stamp its offset.
#[derive(Debug)]
pub struct EncodedBatch {
    bytes: Vec<u8>,
    body_crc: u32,
}

impl EncodedBatch {
    /// Encodes everything but the offset and computes the body CRC. Runs on the
    /// appender's task so the single writer only copies bytes.
    pub fn encode(batch: &Batch) -> Result<Self> {
        let len = batch.encoded_len();
        if len > MAX_BATCH_LEN {
            return Err(Error::BatchTooLarge {
                size: len,
                max: MAX_BATCH_LEN,
            });
        }
        let record_count = u32::try_from(batch.records.len())
            .map_err(|_| Error::Decode("too many records".into()))?;
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.push(MAGIC);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&batch.kind.bits().to_le_bytes());
        b.extend_from_slice(&batch.term.to_le_bytes());
        b.extend_from_slice(&batch.leader.to_le_bytes());
        b.extend_from_slice(&batch.first_timestamp.to_le_bytes());
        b.extend_from_slice(&batch.last_timestamp.to_le_bytes());
        b.extend_from_slice(&record_count.to_le_bytes());
        for r in &batch.records {
            encode_record(r, &mut b)?;
        }
        debug_assert_eq!(b.len(), len);
        let body_crc = crc32c::crc32c(&b[17..]);
        Ok(EncodedBatch { bytes: b, body_crc })
    }

    /// Encoded length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a batch has at least its header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The fixed header as encoded (offset as currently stamped); no CRC check.
    pub fn header(&self) -> BatchHeader {
        let b = &self.bytes;
        BatchHeader {
            offset: read_u64(b, 0),
            len: read_u32(b, 8),
            term: read_u64(b, 19),
            leader: read_u64(b, 27),
            kind: BatchKind::from_bits(read_u16(b, 17) & KIND_MASK).unwrap_or(BatchKind::Data),
            first_timestamp: read_i64(b, 35),
            last_timestamp: read_i64(b, 43),
            record_count: read_u32(b, 51),
        }
    }

    /// Writes the offset and the final CRC.
    pub fn stamp_offset(&mut self, offset: u64) {
        self.bytes[0..8].copy_from_slice(&offset.to_le_bytes());
        let crc = crc32c::crc32c_append(self.body_crc, &self.bytes[0..BATCH_PREFIX_LEN]);
        self.bytes[13..17].copy_from_slice(&crc.to_le_bytes());
    }

    /// The bytes as they go to disk.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Why bytes could not be decoded as a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends inside the batch; `needed` is the full batch length when known.
    Incomplete {
        /// Bytes the batch needs in total, if the prefix was readable.
        needed: Option<usize>,
    },
    /// The bytes are structurally wrong or fail the CRC.
    Corrupt(String),
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Incomplete { .. } => Error::Decode("incomplete batch".into()),
            DecodeError::Corrupt(reason) => Error::Decode(reason),
        }
    }
}

/// Reads and checks the fixed header and the CRC of the batch at the start of `buf`
/// without decoding its records.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    if buf.len() < BATCH_PREFIX_LEN {
        return Err(DecodeError::Incomplete { needed: None });
    }
    let len = read_u32(buf, 8) as usize;
    if !(BATCH_HEADER_LEN..=MAX_BATCH_LEN).contains(&len) {
        return Err(DecodeError::Corrupt(format!(
            "batch length {len} out of range"
        )));
    }
    if buf.len() < len {
        return Err(DecodeError::Incomplete { needed: Some(len) });
    }
    let bytes = &buf[..len];
    if bytes[12] != MAGIC {
        return Err(DecodeError::Corrupt(format!(
            "unknown batch format version {}",
            bytes[12]
        )));
    }
    let stored = read_u32(bytes, 13);
    let actual = crc32c::crc32c_append(crc32c::crc32c(&bytes[17..]), &bytes[..BATCH_PREFIX_LEN]);
    if stored != actual {
        return Err(DecodeError::Corrupt(format!(
            "CRC mismatch (stored {stored:#010x}, computed {actual:#010x})"
        )));
    }
    let attributes = read_u16(bytes, 17);
    let kind = BatchKind::from_bits(attributes & KIND_MASK)
        .filter(|_| attributes & !KIND_MASK == 0)
        .ok_or_else(|| DecodeError::Corrupt(format!("unknown attributes {attributes:#06x}")))?;
    Ok(BatchHeader {
        offset: read_u64(bytes, 0),
        len: len as u32,
        term: read_u64(bytes, 19),
        leader: read_u64(bytes, 27),
        kind,
        first_timestamp: read_i64(bytes, 35),
        last_timestamp: read_i64(bytes, 43),
        record_count: read_u32(bytes, 51),
    })
}

/// Decodes the batch at the start of `buf`, checking its CRC. Returns the batch and the
/// number of bytes it occupied.
pub fn decode_batch(buf: &[u8]) -> Result<(Batch, usize), DecodeError> {
    let header = check_batch(buf)?;
    let len = header.len as usize;
    let mut cur = Cursor {
        buf: &buf[BATCH_HEADER_LEN..len],
        pos: 0,
    };
    // Each record needs at least 22 bytes, which bounds the allocation for hostile counts.
    let mut records = Vec::with_capacity((header.record_count as usize).min(len / 22 + 1));
    for _ in 0..header.record_count {
        records.push(decode_record(&mut cur)?);
    }
    if cur.pos != cur.buf.len() {
        return Err(DecodeError::Corrupt(format!(
            "{} trailing bytes after the last record",
            cur.buf.len() - cur.pos
        )));
    }
    Ok((
        Batch {
            offset: header.offset,
            term: header.term,
            leader: header.leader,
            kind: header.kind,
            first_timestamp: header.first_timestamp,
            last_timestamp: header.last_timestamp,
            records,
        },
        len,
    ))
}

pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn read_i64(b: &[u8], at: usize) -> i64 {
    read_u64(b, at) as i64
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Batch {
        let mut b = Batch::new(
            BatchKind::Data,
            3,
            7,
            vec![
                Record {
                    timestamp: 10,
                    key: Some(b"k".to_vec()),
                    headers: vec![("h".into(), b"v".to_vec())],
                    value: b"hello".to_vec(),
                },
                Record {
                    timestamp: 5,
                    key: None,
                    headers: vec![],
                    value: vec![],
                },
            ],
        );
        b.offset = 42;
        b
    }

    #[test]
    fn round_trip_and_layout() {
        let b = sample();
        let bytes = b.encode().unwrap();
        assert_eq!(bytes.len(), b.encoded_len());
        assert_eq!(read_u64(&bytes, 0), 42);
        assert_eq!(read_u32(&bytes, 8) as usize, bytes.len());
        assert_eq!(bytes[12], MAGIC);
        let (d, n) = decode_batch(&bytes).unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(d, b);
        assert_eq!(d.first_timestamp, 10);
        assert_eq!(d.last_timestamp, 10);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let bytes = sample().encode().unwrap();
        for i in 0..bytes.len() {
            let mut c = bytes.clone();
            c[i] ^= 0x40;
            assert!(decode_batch(&c).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn truncated_batch_is_incomplete() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            match decode_batch(&bytes[..cut]) {
                Err(DecodeError::Incomplete { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            proptest::collection::vec(
                ("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..8)),
                0..3,
            ),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(timestamp, key, headers, value)| Record {
                timestamp,
                key,
                headers,
                value,
            })
    }

    proptest! {
        #[test]
        fn prop_round_trip(offset in any::<u64>(), term in any::<u64>(), records in proptest::collection::vec(arb_record(), 0..8)) {
            let mut b = Batch::new(BatchKind::Data, term, 1, records);
            b.offset = offset;
            let bytes = b.encode().unwrap();
            let (d, n) = decode_batch(&bytes).unwrap();
            prop_assert_eq!(n, bytes.len());
            prop_assert_eq!(d, b);
        }

        #[test]
        fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_batch(&bytes);
        }
    }
}

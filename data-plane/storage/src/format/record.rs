//! Record codec: one message inside a batch (layout in the parent module's docs).

use super::{DecodeError, now_ms, read_i64, read_u16, read_u32};
use crate::error::{Error, Result};

/// Key length that means "no key".
const NO_KEY: u32 = u32::MAX;

/// One message: key, headers, value and a timestamp (ms since the Unix epoch).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Producer or broker timestamp, ms since the Unix epoch.
    pub timestamp: i64,
    /// Optional key (routing / compaction key).
    pub key: Option<Vec<u8>>,
    /// Ordered headers; names need not be unique.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The payload.
    pub value: Vec<u8>,
}

impl Record {
    /// A record with just a value, stamped now.
    pub fn from_value(value: impl Into<Vec<u8>>) -> Self {
        Record {
            timestamp: now_ms(),
            key: None,
            headers: Vec::new(),
            value: value.into(),
        }
    }

    pub(super) fn encoded_len(&self) -> usize {
        4 + 8
            + 4
            + self.key.as_ref().map_or(0, Vec::len)
            + 2
            + self
                .headers
                .iter()
                .map(|(n, v)| 2 + n.len() + 4 + v.len())
                .sum::<usize>()
            + 4
            + self.value.len()
    }
}

pub(super) fn encode_record(r: &Record, b: &mut Vec<u8>) -> Result<()> {
    let body_len = r.encoded_len() - 4;
    b.extend_from_slice(&(body_len as u32).to_le_bytes());
    b.extend_from_slice(&r.timestamp.to_le_bytes());
    match &r.key {
        Some(k) => {
            let n = u32::try_from(k.len())
                .ok()
                .filter(|n| *n != NO_KEY)
                .ok_or_else(|| Error::Decode("key too long".into()))?;
            b.extend_from_slice(&n.to_le_bytes());
            b.extend_from_slice(k);
        }
        None => b.extend_from_slice(&NO_KEY.to_le_bytes()),
    }
    let header_count = u16::try_from(r.headers.len())
        .map_err(|_| Error::Decode("more than 65535 headers".into()))?;
    b.extend_from_slice(&header_count.to_le_bytes());
    for (name, value) in &r.headers {
        let n = u16::try_from(name.len())
            .map_err(|_| Error::Decode("header name longer than 65535 bytes".into()))?;
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&(value.len() as u32).to_le_bytes());
        b.extend_from_slice(value);
    }
    b.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
    b.extend_from_slice(&r.value);
    Ok(())
}

pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| DecodeError::Corrupt("record runs past the end of its batch".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.take(2).map(|s| read_u16(s, 0))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take(4).map(|s| read_u32(s, 0))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        self.take(8).map(|s| read_i64(s, 0))
    }
}

pub(super) fn decode_record(cur: &mut Cursor<'_>) -> Result<Record, DecodeError> {
    let record_len = cur.u32()? as usize;
    let start = cur.pos;
    let timestamp = cur.i64()?;
    let key_len = cur.u32()?;
    let key = if key_len == NO_KEY {
        None
    } else {
        Some(cur.take(key_len as usize)?.to_vec())
    };
    let header_count = cur.u16()?;
    let mut headers = Vec::with_capacity(usize::from(header_count).min(64));
    for _ in 0..header_count {
        let name_len = cur.u16()? as usize;
        let name = std::str::from_utf8(cur.take(name_len)?)
            .map_err(|_| DecodeError::Corrupt("header name is not UTF-8".into()))?
            .to_owned();
        let value_len = cur.u32()? as usize;
        headers.push((name, cur.take(value_len)?.to_vec()));
    }
    let value_len = cur.u32()? as usize;
    let value = cur.take(value_len)?.to_vec();
    if cur.pos - start != record_len {
        return Err(DecodeError::Corrupt(format!(
            "record length {record_len} does not match its fields ({})",
            cur.pos - start
        )));
    }
    Ok(Record {
        timestamp,
        key,
        headers,
        value,
    })
}

//! `format=batches` fetches: the broker sends a partition's stored batches
//! as they are on disk, each behind a 16-byte frame header (first offset
//! u64, record count u32, batch length u32, little-endian), with positions
//! in `x-sluice-*` headers. The answer is kept as the one buffer it arrived
//! in and [`FetchedBatches::frames`] borrows each batch from it: nothing is
//! copied or decoded here. Decoding a batch (CRC check, records) is the
//! storage format's business (`sluice_storage::format::decode_batch`);
//! record 0 of each stored batch is the partition's command, so a batch
//! framed at offset `o` holds records `o, o + 1, ...` from its record 1 on.

use bytes::Bytes;
use reqwest::Method;

use super::streams::{FetchRequest, fetch_path};
use crate::call::{Answer, Call};
use crate::client::Client;
use crate::error::ClientError;

/// Bytes before each batch.
pub const FRAME_HEADER_LEN: usize = 16;

/// A `format=batches` answer.
#[derive(Debug, Clone)]
pub struct FetchedBatches {
    /// The offset asked for: records below it in the first batch are to be skipped.
    pub start_offset: u64,
    pub next_offset: u64,
    pub high_watermark: u64,
    pub earliest_offset: u64,
    /// The frames, as received.
    pub body: Bytes,
}

/// One framed batch, borrowed from the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    pub record_count: u32,
    /// The stored batch, in the storage format.
    pub batch: &'a [u8],
}

/// A frame that does not fit in the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("torn frame at byte {at} of a batches answer")]
pub struct TornFrame {
    pub at: usize,
}

impl FetchedBatches {
    /// The frames in order; a torn one ends the iteration with an error.
    pub fn frames(&self) -> Frames<'_> {
        Frames {
            rest: &self.body,
            at: 0,
        }
    }
}

/// Iterator over the frames of a [`FetchedBatches`].
pub struct Frames<'a> {
    rest: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, TornFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let torn = TornFrame { at: self.at };
        let Some((header, rest)) = self.rest.split_first_chunk::<FRAME_HEADER_LEN>() else {
            self.rest = &[];
            return Some(Err(torn));
        };
        let (base, tail) = header.split_at(8);
        let (count, len) = tail.split_at(4);
        let base_offset = u64::from_le_bytes(base.try_into().unwrap_or_default());
        let record_count = u32::from_le_bytes(count.try_into().unwrap_or_default());
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        let Some((batch, rest)) = rest.split_at_checked(len) else {
            self.rest = &[];
            return Some(Err(torn));
        };
        self.rest = rest;
        self.at += FRAME_HEADER_LEN + len;
        Some(Ok(Frame {
            base_offset,
            record_count,
            batch,
        }))
    }
}

fn batches(answer: Answer) -> Result<FetchedBatches, ClientError> {
    answer.error_unless_success()?;
    let header = |name: &str| -> Result<u64, ClientError> {
        answer
            .header(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ClientError::Protocol {
                request: answer.request(),
                what: format!("a batches answer without {name}"),
            })
    };
    Ok(FetchedBatches {
        start_offset: header("x-sluice-start-offset")?,
        next_offset: header("x-sluice-next-offset")?,
        high_watermark: header("x-sluice-high-watermark")?,
        earliest_offset: header("x-sluice-earliest-offset")?,
        body: answer.body,
    })
}

impl Client {
    /// `GET /v1/streams/{s}/partitions/{p}/records?format=batches`: the
    /// stored batches, zero-copy (see the module docs).
    pub fn fetch_batches(
        &self,
        stream: &str,
        partition: u32,
        request: &FetchRequest,
    ) -> Call<FetchedBatches> {
        let path = fetch_path(stream, partition, request, "batches");
        Call::decoded(self, Method::GET, path, batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(base: u64, count: u32, batch: &[u8]) -> Vec<u8> {
        let mut out = base.to_le_bytes().to_vec();
        out.extend(count.to_le_bytes());
        out.extend((batch.len() as u32).to_le_bytes());
        out.extend(batch);
        out
    }

    fn answer(body: Vec<u8>) -> FetchedBatches {
        FetchedBatches {
            start_offset: 0,
            next_offset: 0,
            high_watermark: 0,
            earliest_offset: 0,
            body: Bytes::from(body),
        }
    }

    #[test]
    fn frames_borrow_their_batches() {
        let mut body = frame(10, 2, b"abc");
        body.extend(frame(12, 1, b""));
        body.extend(frame(13, 5, b"defgh"));
        let fetched = answer(body);
        let frames: Vec<Frame<'_>> = fetched.frames().collect::<Result<_, _>>().expect("frames");
        assert_eq!(frames.len(), 3);
        assert_eq!((frames[0].base_offset, frames[0].record_count), (10, 2));
        assert_eq!(frames[0].batch, b"abc");
        assert_eq!(frames[1].batch, b"");
        assert_eq!(frames[2].batch, b"defgh");
        assert!(std::ptr::eq(
            frames[2].batch.as_ptr(),
            fetched.body[fetched.body.len() - 5..].as_ptr()
        ));
    }

    #[test]
    fn a_torn_frame_is_an_error() {
        let mut body = frame(1, 1, b"abc");
        let whole = body.len();
        body.extend(&frame(2, 1, b"abcdef")[..20]);
        let fetched = answer(body.clone());
        let frames: Vec<_> = fetched.frames().collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1], Err(TornFrame { at: whole }));
        body.truncate(whole + 3);
        assert_eq!(
            answer(body).frames().nth(1),
            Some(Err(TornFrame { at: whole }))
        );
    }
}

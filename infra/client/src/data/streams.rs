//! Streams on the brokers: produce (optionally as an idempotent producer),
//! producer ids, and fetch of a partition's records as JSON. The
//! `format=batches` fetch is in [`super::batches`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::messages::{BodyEncoding, encode_bytes};
use crate::call::Call;
use crate::client::Client;
use crate::path::Path;

/// One record to produce.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord<'a> {
    /// Picks the partition (Kafka's murmur2) unless `partition` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Cow<'a, str>>,
    pub value: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_utf8")]
    pub value_encoding: BodyEncoding,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Milliseconds since the epoch (default: the broker's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

fn is_utf8(encoding: &BodyEncoding) -> bool {
    *encoding == BodyEncoding::Utf8
}

impl<'a> ProduceRecord<'a> {
    /// A record with a text value and nothing else.
    pub fn text(value: impl Into<Cow<'a, str>>) -> ProduceRecord<'a> {
        ProduceRecord {
            value: value.into(),
            ..ProduceRecord::default()
        }
    }

    /// A record with a byte value: as text when it is UTF-8, else base64.
    pub fn bytes(value: &'a [u8]) -> ProduceRecord<'a> {
        let (value, value_encoding) = encode_bytes(value);
        ProduceRecord {
            value,
            value_encoding,
            ..ProduceRecord::default()
        }
    }
}

/// An idempotent producer's batch header: id and epoch from
/// `POST /v1/streams/{s}/producers`, and the first record's sequence
/// (`sequences` per partition when the records span partitions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerHeader {
    pub id: u64,
    pub epoch: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sequences: BTreeMap<u32, u64>,
}

/// `POST /v1/streams/{s}/records`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest<'a> {
    pub records: Vec<ProduceRecord<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<ProducerHeader>,
}

/// Where one produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducedRecord {
    pub partition: u32,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    pub records: Vec<ProducedRecord>,
    /// The batch was an idempotent retry: stored before, offsets as then.
    pub duplicate: bool,
    #[serde(default)]
    pub duplicate_partitions: Vec<u32>,
}

/// `POST /v1/streams/{s}/producers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatedProducer {
    pub producer_id: u64,
    pub epoch: u32,
}

/// Where a fetch starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FetchFrom {
    #[default]
    Earliest,
    /// The high watermark: only what is produced from now on.
    Latest,
    Offset(u64),
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// A fetch's position and limits (`GET /v1/streams/{s}/partitions/{p}/records`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchRequest {
    pub from: FetchFrom,
    /// 1–1000 (default 100).
    pub max_records: Option<u32>,
    pub max_bytes: Option<u64>,
    /// Wait up to this long (0–20000 ms) when there are no records yet.
    pub wait_ms: Option<u64>,
}

impl FetchRequest {
    pub fn from_offset(offset: u64) -> FetchRequest {
        FetchRequest {
            from: FetchFrom::Offset(offset),
            ..FetchRequest::default()
        }
    }
}

/// One record of a JSON fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchedRecord {
    pub offset: u64,
    #[serde(default)]
    pub key: Option<String>,
    pub value: String,
    pub value_encoding: BodyEncoding,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchResponse {
    pub records: Vec<FetchedRecord>,
    /// Where the next fetch starts.
    pub next_offset: u64,
    /// One past the last committed record.
    pub high_watermark: u64,
    pub earliest_offset: u64,
}

/// The path and query of a fetch in `format`.
pub(crate) fn fetch_path(
    stream: &str,
    partition: u32,
    request: &FetchRequest,
    format: &str,
) -> String {
    let (offset, timestamp) = match request.from {
        FetchFrom::Earliest => (None, None),
        FetchFrom::Latest => (Some(Cow::Borrowed("latest")), None),
        FetchFrom::Offset(offset) => (Some(Cow::Owned(offset.to_string())), None),
        FetchFrom::Timestamp(ts) => (None, Some(ts)),
    };
    Path::new("/v1/streams")
        .seg(stream)
        .lit("partitions")
        .lit(&partition.to_string())
        .lit("records")
        .query("offset", offset)
        .query("timestamp", timestamp)
        .query("max_records", request.max_records)
        .query("max_bytes", request.max_bytes)
        .query("wait_ms", request.wait_ms)
        .query("format", (format != "json").then_some(format))
        .finish()
}

impl Client {
    /// `POST /v1/streams/{s}/records`: answers after the durable commit. A
    /// 503 is retried only with a `producer` (its sequence makes a repeat a
    /// `duplicate`); a sequence refusal is a 409 problem whose
    /// `expected_sequence` member says what the partition expects.
    pub fn produce(&self, stream: &str, request: &ProduceRequest<'_>) -> Call<ProduceResponse> {
        let path = Path::new("/v1/streams").seg(stream).lit("records").finish();
        Call::new(self, Method::POST, path)
            .json(request)
            .retry_unavailable(request.producer.is_some())
    }

    /// `POST /v1/streams/{s}/producers`: a new idempotent producer id.
    pub fn allocate_producer(&self, stream: &str) -> Call<AllocatedProducer> {
        let path = Path::new("/v1/streams")
            .seg(stream)
            .lit("producers")
            .finish();
        Call::new(self, Method::POST, path)
    }

    /// `GET /v1/streams/{s}/partitions/{p}/records` as JSON records.
    pub fn fetch(
        &self,
        stream: &str,
        partition: u32,
        request: &FetchRequest,
    ) -> Call<FetchResponse> {
        Call::new(
            self,
            Method::GET,
            fetch_path(stream, partition, request, "json"),
        )
    }
}

//! Streams on the wire: `POST /v1/streams/{s}/records` produces a batch and
//! answers after the durable commit of every partition it went to, with each
//! record's partition and offset; `GET /v1/streams/{s}/partitions/{p}/records`
//! fetches from an offset (or a timestamp), long-polling for new records.
//!
//! Partitioning: an explicit `partition` is honoured; a keyed record goes
//! to `(murmur2(key) & 0x7fffffff) % partitions` (Kafka's partitioner,
//! [`crate::stream::hash`]); keyless records of one request stick to one
//! partition, chosen round-robin across requests. A `producer` makes the
//! batch idempotent; its records must then all go to one partition (Kafka's
//! sequences are per partition). Values are bytes: a fetch answers `utf8`
//! when the value is valid UTF-8, else `base64`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use base64::Engine;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use sluice_storage::Record;
use sluice_stream::{Command, PartitionReply, ProducerBatch, StreamError};

use super::json::JsonBody;
use super::openapi::ProblemResponses;
use super::publish::{charge, max_message_bytes};
use super::{BrokerState, CallerAuth, forward};
use crate::auth::Caller;
use crate::error::{BrokerError, BrokerResult};
use crate::queue::BodyEncoding;
use crate::queue::group::now_ms;
use crate::stream::hash::partition_for_key;
use crate::stream::{ApplyError, EntryReply, PartitionGroup};
use crate::topology::FeedStream;

/// Longest long-poll of a fetch.
const MAX_WAIT_MS: u64 = 20_000;
const MAX_RECORDS: usize = 1000;
const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// Round-robin cursor for keyless batches.
static STICKY: AtomicU32 = AtomicU32::new(0);

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    /// Keyed records go to `murmur2(key) % partitions` (Kafka's partitioner).
    #[serde(default)]
    key: Option<String>,
    value: String,
    #[serde(default)]
    value_encoding: BodyEncoding,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch (default: when the broker received it).
    #[serde(default)]
    timestamp: Option<i64>,
    /// Explicit partition (overrides the key).
    #[serde(default)]
    partition: Option<u32>,
}

/// An idempotent producer's batch header: Kafka's producer id, epoch and
/// the sequence number of the batch's first record.
#[derive(Deserialize, utoipa::ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct ProducerHeader {
    id: u64,
    epoch: u32,
    sequence: u64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    records: Vec<ProduceRecord>,
    #[serde(default)]
    producer: Option<ProducerHeader>,
}

#[derive(Serialize, utoipa::ToSchema, Clone, Copy)]
pub struct ProducedRecord {
    partition: u32,
    offset: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProduceResponse {
    records: Vec<ProducedRecord>,
    /// True when an idempotent retry was answered with the original offsets.
    duplicate: bool,
}

pub(crate) fn stream_of(
    state: &BrokerState,
    caller: &Caller,
    name: &str,
) -> BrokerResult<FeedStream> {
    state
        .topology
        .current()
        .streams
        .get(&(caller.tenant_id, name.to_string()))
        .cloned()
        .ok_or_else(|| BrokerError::NotFound {
            kind: "stream",
            name: name.to_string(),
        })
}

pub(crate) fn partition_group(
    state: &BrokerState,
    caller: &Caller,
    stream: &str,
    partition: u32,
) -> BrokerResult<Arc<PartitionGroup>> {
    state
        .partitions
        .get(caller.tenant_id, stream, partition)
        .ok_or_else(|| {
            BrokerError::Unavailable(format!(
                "partition {partition} of stream `{stream}` is not hosted on this broker yet"
            ))
        })
}

/// The stream's own record size limit, capped by the tenant's quota.
fn record_limit(state: &BrokerState, caller: &Caller, stream: &FeedStream) -> u64 {
    let quota = u64::try_from(max_message_bytes(state, caller)).unwrap_or(0);
    match stream
        .spec
        .get("max_message_bytes")
        .and_then(|v| v.as_u64())
    {
        Some(own) => own.min(quota),
        None => quota,
    }
}

/// Validates the batch and turns it into storage records, each with its partition.
fn prepare(
    request: &ProduceRequest,
    partitions: u32,
    limit: u64,
) -> BrokerResult<Vec<(u32, Record)>> {
    if request.records.is_empty() {
        return Err(BrokerError::validation(
            "records",
            "non-empty",
            "a produce needs at least one record",
        ));
    }
    let sticky = STICKY.fetch_add(1, Ordering::Relaxed) % partitions.max(1);
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(request.records.len());
    for (i, r) in request.records.iter().enumerate() {
        let partition = match (r.partition, &r.key) {
            (Some(p), _) if p >= partitions => {
                return Err(BrokerError::validation(
                    format!("records[{i}].partition"),
                    "range",
                    format!("partition {p} does not exist: the stream has {partitions} partitions"),
                ));
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key.as_bytes(), partitions),
            (None, None) => sticky,
        };
        let value = match r.value_encoding {
            BodyEncoding::Utf8 => r.value.as_bytes().to_vec(),
            BodyEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&r.value)
                .map_err(|e| {
                    BrokerError::validation(
                        format!("records[{i}].value"),
                        "base64",
                        format!("not base64: {e}"),
                    )
                })?,
        };
        let size = value.len() as u64 + r.key.as_ref().map_or(0, |k| k.len() as u64);
        if size > limit {
            return Err(BrokerError::TooLarge {
                field: format!("records[{i}].value"),
                detail: format!("the record is {size} bytes; this stream accepts at most {limit}"),
            });
        }
        out.push((
            partition,
            Record {
                timestamp: r.timestamp.unwrap_or(now),
                key: r.key.as_ref().map(|k| k.as_bytes().to_vec()),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                    .collect(),
                value,
            },
        ));
    }
    Ok(out)
}

fn sequence_error(err: StreamError) -> BrokerError {
    match err {
        StreamError::OutOfOrderSequence { expected, got } => BrokerError::ProducerSequence {
            slug: "out-of-order-sequence",
            detail: format!("producer sequence {got} is out of order: expected {expected}"),
            expected_sequence: Some(expected),
        },
        StreamError::DuplicateSequenceUnknown { .. } => BrokerError::ProducerSequence {
            slug: "duplicate-sequence",
            detail: err.to_string(),
            expected_sequence: None,
        },
        StreamError::ProducerFenced { .. } => BrokerError::ProducerSequence {
            slug: "producer-fenced",
            detail: err.to_string(),
            expected_sequence: None,
        },
        other => BrokerError::Internal(anyhow::Error::new(other)),
    }
}

/// Where a partition's records are written.
enum Target {
    Local(Arc<PartitionGroup>),
    /// The data URL of the broker hosting the partition.
    Remote(String),
}

fn target(
    state: &BrokerState,
    caller: &Caller,
    stream: &str,
    partition: u32,
) -> BrokerResult<Target> {
    if let Some(group) = state.partitions.get(caller.tenant_id, stream, partition) {
        return Ok(Target::Local(group));
    }
    match forward::remote_stream_url(state, caller.tenant_id, stream, Some(partition)) {
        Some(url) => Ok(Target::Remote(url)),
        None => partition_group(state, caller, stream, partition).map(Target::Local),
    }
}

/// Appends `batch` to a partition hosted here: its offsets, and whether it
/// was an idempotent retry answered with the original offsets.
async fn produce_local(
    group: &PartitionGroup,
    batch: Vec<Record>,
    producer: Option<ProducerBatch>,
) -> BrokerResult<(Vec<u64>, bool)> {
    let command = Command::Produce {
        record_count: batch.len() as u32,
        producer,
    };
    match group.propose(command, batch).await? {
        Ok(EntryReply::Partition(PartitionReply::Produced(produced))) => {
            Ok((produced.offsets().collect(), produced.duplicate))
        }
        Ok(other) => Err(BrokerError::Internal(anyhow::anyhow!(
            "produce got an unexpected reply: {other:?}"
        ))),
        Err(ApplyError::Stream(err)) => Err(sequence_error(err)),
        Err(other) => Err(BrokerError::Internal(anyhow::Error::new(other))),
    }
}

/// Produce records to a stream. Answers after every partition the batch
/// went to durably committed it, with each record's partition and offset.
#[utoipa::path(post, path = "/v1/streams/{stream}/records", tag = "streams",
    params(("stream" = String, Path, description = "Stream name")),
    request_body = ProduceRequest,
    responses(
        (status = 200, body = ProduceResponse),
        (status = 409, description = "Idempotent producer: sequence gap (`expected_sequence`), unknown duplicate or fenced epoch", body = crate::error::Problem, content_type = "application/problem+json"),
        ProblemResponses),
    security(("bearer" = [])))]
pub async fn produce(
    State(state): State<BrokerState>,
    headers: HeaderMap,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<ProduceRequest>,
) -> BrokerResult<Json<ProduceResponse>> {
    caller.require("publish")?;
    let stream = stream_of(&state, &caller, &name)?;
    let partitions = stream.partitions.len() as u32;
    let records = prepare(&request, partitions, record_limit(&state, &caller, &stream))?;
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, (p, _)) in records.iter().enumerate() {
        by_partition.entry(*p).or_default().push(i);
    }
    let producer = request.producer;
    if producer.is_some() && by_partition.len() > 1 {
        return Err(BrokerError::validation(
            "producer",
            "one-partition",
            "an idempotent batch must go to one partition (sequences are per partition); split it",
        ));
    }
    let targets = by_partition
        .keys()
        .map(|p| target(&state, &caller, &name, *p).map(|t| (*p, t)))
        .collect::<BrokerResult<HashMap<u32, Target>>>()?;
    let total = records.len();
    let bytes: u64 = records.iter().map(|(_, r)| r.value.len() as u64).sum();
    if !forward::already_charged(&state, &headers) {
        charge(&state, &caller, "records", total as u64, bytes)?;
    }
    let mut slots: Vec<Vec<Record>> = by_partition.values().map(|_| Vec::new()).collect();
    let position: HashMap<u32, usize> = by_partition
        .keys()
        .enumerate()
        .map(|(i, p)| (*p, i))
        .collect();
    for (p, record) in records {
        slots[position[&p]].push(record);
    }
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let writes = by_partition.keys().zip(slots).map(|(p, batch)| {
        let target = &targets[p];
        let (state, name) = (&state, &name);
        let producer = producer.map(|h| ProducerBatch {
            producer_id: h.id,
            epoch: h.epoch,
            base_sequence: h.sequence,
        });
        async move {
            match target {
                Target::Local(group) => produce_local(group, batch, producer).await,
                Target::Remote(url) => {
                    forward::produce_remote(state, url, name, *p, authorization, &batch, producer)
                        .await
                }
            }
        }
    });
    let results = join_all(writes).await;
    let mut answer = vec![
        ProducedRecord {
            partition: 0,
            offset: 0
        };
        total
    ];
    let mut duplicate = false;
    for ((p, indexes), result) in by_partition.iter().zip(results) {
        let (offsets, was_duplicate) = result?;
        duplicate |= was_duplicate;
        for (i, offset) in indexes.iter().zip(offsets) {
            answer[*i] = ProducedRecord {
                partition: *p,
                offset,
            };
        }
    }
    crate::metrics::published(&caller.tenant, &name, total as u64, bytes);
    Ok(Json(ProduceResponse {
        records: answer,
        duplicate,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FetchParams {
    /// `earliest`, `latest` or an offset (default `earliest`, unless `timestamp` is given).
    #[serde(default)]
    offset: Option<String>,
    /// Start at the first record whose timestamp is at or after this (ms since the epoch).
    #[serde(default)]
    timestamp: Option<i64>,
    /// 1 to 1000 (default 100).
    #[serde(default)]
    max_records: Option<usize>,
    /// About this many value bytes at most (at least one record is returned).
    #[serde(default)]
    max_bytes: Option<usize>,
    /// Wait up to this long (0 to 20000 ms) for records when there are none yet.
    #[serde(default)]
    wait_ms: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FetchedRecord {
    offset: u64,
    key: Option<String>,
    value: String,
    value_encoding: BodyEncoding,
    headers: BTreeMap<String, String>,
    timestamp: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FetchResponse {
    records: Vec<FetchedRecord>,
    /// The offset to fetch from next.
    next_offset: u64,
    /// The next offset to be written: everything below it is committed.
    high_watermark: u64,
    earliest_offset: u64,
}

fn text_or_base64(bytes: Vec<u8>) -> (String, BodyEncoding) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, BodyEncoding::Utf8),
        Err(err) => (
            base64::engine::general_purpose::STANDARD.encode(err.into_bytes()),
            BodyEncoding::Base64,
        ),
    }
}

fn wire(offset: u64, record: Record) -> FetchedRecord {
    let (value, value_encoding) = text_or_base64(record.value);
    FetchedRecord {
        offset,
        key: record.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
        value,
        value_encoding,
        headers: record
            .headers
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect(),
        timestamp: record.timestamp,
    }
}

/// The first offset whose batch sits at or after `log_index` (offsets map
/// to log indexes monotonically, so a binary search over offsets finds it).
pub(crate) fn offset_at_or_after(group: &PartitionGroup, log_index: u64) -> u64 {
    group.view().read(|p| {
        let (mut low, mut high) = (p.earliest_offset(), p.end_offset());
        while low < high {
            let mid = low + (high - low) / 2;
            match p.locate(mid) {
                Some((index, _)) if index < log_index => low = mid + 1,
                _ => high = mid,
            }
        }
        low
    })
}

/// Fetch records of one partition from an offset (or a timestamp). Reading
/// never deletes; with `wait_ms`, waits for records to be produced.
#[utoipa::path(get, path = "/v1/streams/{stream}/partitions/{partition}/records", tag = "streams",
    params(
        ("stream" = String, Path, description = "Stream name"),
        ("partition" = u32, Path, description = "Partition number, from 0"),
        FetchParams),
    responses(
        (status = 200, body = FetchResponse),
        (status = 416, description = "Offset below the earliest offset or beyond the high watermark (`earliest_offset`, `high_watermark`)", body = crate::error::Problem, content_type = "application/problem+json"),
        ProblemResponses),
    security(("bearer" = [])))]
pub async fn fetch(
    State(state): State<BrokerState>,
    CallerAuth(caller): CallerAuth,
    Path((name, partition)): Path<(String, String)>,
    Query(params): Query<FetchParams>,
) -> BrokerResult<Json<FetchResponse>> {
    caller.require("consume")?;
    let stream = stream_of(&state, &caller, &name)?;
    let partitions = stream.partitions.len() as u32;
    let partition = partition
        .parse::<u32>()
        .ok()
        .filter(|p| *p < partitions)
        .ok_or_else(|| BrokerError::NotFound {
            kind: "partition",
            name: format!("{name}/{partition}"),
        })?;
    let max_records = params.max_records.unwrap_or(100);
    if !(1..=MAX_RECORDS).contains(&max_records) {
        return Err(BrokerError::validation(
            "max_records",
            "range",
            "max_records must be 1 to 1000",
        ));
    }
    let wait_ms = params.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        return Err(BrokerError::validation(
            "wait_ms",
            "range",
            "wait_ms must be 0 to 20000",
        ));
    }
    let max_bytes = params.max_bytes.unwrap_or(DEFAULT_MAX_BYTES).max(1);
    let group = partition_group(&state, &caller, &name, partition)?;
    let bounds = |g: &PartitionGroup| g.view().read(|p| (p.earliest_offset(), p.high_watermark()));
    let (earliest, end) = bounds(&group);
    let mut since_timestamp = None;
    let offset = match (params.offset.as_deref(), params.timestamp) {
        (Some(_), Some(_)) => {
            return Err(BrokerError::validation(
                "timestamp",
                "exclusive",
                "give `offset` or `timestamp`, not both",
            ));
        }
        (None, Some(ts)) => {
            since_timestamp = Some(ts);
            match group.log_index_for_timestamp(ts).await? {
                Some(index) => offset_at_or_after(&group, index),
                None => end,
            }
        }
        (None | Some("earliest"), None) => earliest,
        (Some("latest"), None) => end,
        (Some(n), None) => n.parse::<u64>().map_err(|_| {
            BrokerError::validation(
                "offset",
                "offset",
                "offset must be `earliest`, `latest` or a non-negative integer",
            )
        })?,
    };
    if offset < earliest || offset > end {
        return Err(BrokerError::OffsetOutOfRange {
            detail: format!(
                "offset {offset} is outside the partition's records [{earliest}, {end}]"
            ),
            earliest_offset: earliest,
            high_watermark: end,
        });
    }

    let mut applied = group.view().subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let mut start = offset;
    loop {
        let stored = group.read(start, max_records, max_bytes).await?;
        let mut records = Vec::with_capacity(stored.len());
        let mut next_offset = start;
        for s in stored {
            next_offset = s.offset + 1;
            if since_timestamp.is_some_and(|ts| records.is_empty() && s.record.timestamp < ts) {
                continue;
            }
            records.push(wire(s.offset, s.record));
        }
        let (earliest, end) = bounds(&group);
        if !records.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(FetchResponse {
                records,
                next_offset,
                high_watermark: end,
                earliest_offset: earliest,
            }));
        }
        start = next_offset;
        if end > start {
            continue; // skipped records older than the timestamp: read on
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() {
                return Err(BrokerError::Unavailable("the partition closed".into()));
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

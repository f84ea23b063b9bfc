//! Fetching a stream partition: `GET /v1/streams/{s}/partitions/{p}/records`
//! from an offset (`earliest`, `latest`, a number) or the first record at or
//! after a timestamp, long-polling up to `wait_ms` when there is nothing yet.
//! Reading never deletes.
//!
//! Two formats:
//! - `format=json` (default): records decoded, values as UTF-8 or base64.
//! - `format=batches`: the stored batches themselves, read from the segment
//!   file and sent without decoding or re-encoding a record (Kafka's fetch
//!   path). The body is frames of a 16-byte header (first record's offset
//!   u64, record count u32, batch length u32, little-endian) followed by the
//!   batch in the storage format (`data-plane/storage/FORMAT.md`; record 0
//!   is the partition command, records 1.. the produced records). Whole
//!   batches are sent, so the first may start before the requested offset
//!   (`x-sluice-start-offset`: skip records below it); offsets and
//!   watermarks travel in `x-sluice-*` headers.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_storage::Record;
use tokio::sync::watch;

use super::CallerAuth;
use super::lookup::{partition_group, stream_of};
use super::query::QueryParams;
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;
use crate::queue::BodyEncoding;
use crate::stream::PartitionGroup;
use crate::stream::host::PartitionInUse;

/// Longest long-poll of a fetch.
const MAX_WAIT_MS: u64 = 20_000;
const MAX_RECORDS: usize = 1000;
const DEFAULT_MAX_BYTES: usize = 1 << 20;
/// The media type of a `format=batches` answer.
pub const BATCHES_CONTENT_TYPE: &str = "application/vnd.sluice.batches";

/// How a fetch answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FetchFormat {
    /// Decoded records in JSON.
    #[default]
    Json,
    /// Stored batches straight from the segment files (see the module docs).
    Batches,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FetchParams {
    /// `earliest`, `latest` or an offset (default `earliest`, unless `timestamp` is given).
    #[serde(default)]
    offset: Option<String>,
    /// Start at the first record whose timestamp is at or after this (ms since the epoch).
    #[serde(default)]
    timestamp: Option<i64>,
    /// 1 to 1000 (default 100); `batches` answers whole batches.
    #[serde(default)]
    max_records: Option<usize>,
    /// About this many bytes at most (at least one record or batch is returned).
    #[serde(default)]
    max_bytes: Option<usize>,
    /// Wait up to this long (0 to 20000 ms) for records when there are none yet.
    #[serde(default)]
    wait_ms: Option<u64>,
    /// `json` (default) or `batches` (stored batches, `application/vnd.sluice.batches`).
    #[serde(default)]
    format: FetchFormat,
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

/// A validated fetch, positioned in its partition.
struct Position {
    group: std::sync::Arc<PartitionGroup>,
    /// Keeps the partition awake while the fetch waits for records.
    _in_use: Option<PartitionInUse>,
    /// The first offset to return.
    offset: u64,
    /// Records older than this are skipped (a timestamp fetch).
    since_timestamp: Option<i64>,
    max_records: usize,
    max_bytes: usize,
    deadline: tokio::time::Instant,
}

/// Fetch records of one partition from an offset (or a timestamp). Reading
/// never deletes; with `wait_ms`, waits for records to be produced.
#[utoipa::path(get, path = "/v1/streams/{stream}/partitions/{partition}/records", tag = "streams",
    params(
        ("stream" = String, Path, description = "Stream name"),
        ("partition" = u32, Path, description = "Partition number, from 0"),
        FetchParams),
    responses(
        (status = 200, description = "Records (`format=json`), or stored batches (`format=batches`: frames of a 16-byte header — first offset u64, record count u32, batch length u32, little-endian — and the batch in the storage format; `x-sluice-start-offset`, `x-sluice-next-offset`, `x-sluice-high-watermark`, `x-sluice-earliest-offset` headers)",
            content(
                (FetchResponse = "application/json"),
                (Vec<u8> = "application/vnd.sluice.batches"))),
        (status = 416, description = "Offset below the earliest offset or beyond the high watermark (`earliest_offset`, `high_watermark`)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::ProblemResponses),
    security(("bearer" = [])))]
pub async fn fetch(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path((name, partition)): Path<(String, String)>,
    QueryParams(params): QueryParams<FetchParams>,
) -> BrokerResult<Response> {
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
    // A fetch that may wait holds a connection while it does: counted
    // against the tenant's cap on open long-polls.
    let _waiting = if params.wait_ms.unwrap_or(0) > 0 {
        Some(state.waiters.enter(caller.tenant_id)?)
    } else {
        None
    };
    let group = partition_group(&state, &caller, &name, partition).await?;
    let format = params.format;
    let position = position(group, params).await?;
    match format {
        FetchFormat::Json => fetch_json(position).await,
        FetchFormat::Batches => fetch_batches(position).await,
    }
}

/// Checks the parameters and finds the first offset to return.
async fn position(in_use: PartitionInUse, params: FetchParams) -> BrokerResult<Position> {
    let group = in_use.group().clone();
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
                Some(index) => group.offset_at_or_after(index),
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
        return Err(out_of_range(offset, earliest, end));
    }
    Ok(Position {
        group,
        _in_use: Some(in_use),
        offset,
        since_timestamp,
        max_records,
        max_bytes,
        deadline: tokio::time::Instant::now() + Duration::from_millis(wait_ms),
    })
}

fn out_of_range(offset: u64, earliest: u64, end: u64) -> BrokerError {
    BrokerError::OffsetOutOfRange {
        detail: format!("offset {offset} is outside the partition's records [{earliest}, {end}]"),
        earliest_offset: earliest,
        high_watermark: end,
    }
}

/// 416 when retention moved the earliest offset past `offset` (while a
/// long-poll waited, or between locating a batch and reading it).
fn check_still_readable(group: &PartitionGroup, offset: u64) -> BrokerResult<()> {
    let (earliest, end) = bounds(group);
    if offset < earliest {
        return Err(out_of_range(offset, earliest, end));
    }
    Ok(())
}

/// A read that failed: 416 when retention raced it, else the error.
fn read_failed(group: &PartitionGroup, offset: u64, err: crate::queue::GroupError) -> BrokerError {
    match check_still_readable(group, offset) {
        Err(out_of_range) => out_of_range,
        Ok(()) => err.into(),
    }
}

/// The earliest offset and the high watermark.
fn bounds(group: &PartitionGroup) -> (u64, u64) {
    group
        .view()
        .read(|p| (p.earliest_offset(), p.high_watermark()))
}

/// Waits for the next applied entry or the deadline.
async fn wait(
    applied: &mut watch::Receiver<u64>,
    deadline: tokio::time::Instant,
) -> BrokerResult<()> {
    tokio::select! {
        changed = applied.changed() => changed
            .map_err(|_| BrokerError::Unavailable("the partition closed".into())),
        _ = tokio::time::sleep_until(deadline) => Ok(()),
    }
}

async fn fetch_json(at: Position) -> BrokerResult<Response> {
    let group = &at.group;
    let mut applied = group.view().subscribe();
    let mut start = at.offset;
    loop {
        check_still_readable(group, start)?;
        let stored = group
            .read(start, at.max_records, at.max_bytes)
            .await
            .map_err(|e| read_failed(group, start, e))?;
        let mut records = Vec::with_capacity(stored.len());
        let mut next_offset = start;
        let mut bytes = 0;
        for s in stored {
            next_offset = s.offset + 1;
            if at
                .since_timestamp
                .is_some_and(|ts| records.is_empty() && s.record.timestamp < ts)
            {
                continue;
            }
            bytes += s.record.value.len() as u64;
            records.push(wire(s.offset, s.record));
        }
        let (earliest, end) = bounds(group);
        if !records.is_empty() || tokio::time::Instant::now() >= at.deadline {
            group.traffic().fetched_json(records.len() as u64, bytes);
            let response = FetchResponse {
                records,
                next_offset,
                high_watermark: end,
                earliest_offset: earliest,
            };
            return Ok(Json(response).into_response());
        }
        start = next_offset;
        if end > start {
            continue; // skipped records older than the timestamp: read on
        }
        wait(&mut applied, at.deadline).await?;
    }
}

async fn fetch_batches(at: Position) -> BrokerResult<Response> {
    let group = &at.group;
    let mut applied = group.view().subscribe();
    loop {
        check_still_readable(group, at.offset)?;
        let raw = group
            .read_raw(at.offset, at.max_bytes)
            .await
            .map_err(|e| read_failed(group, at.offset, e))?;
        if !raw.chunks.is_empty() || tokio::time::Instant::now() >= at.deadline {
            let (earliest, end) = bounds(group);
            let bytes: u64 = raw.chunks.iter().map(|c| c.len() as u64).sum();
            group.traffic().fetched_batches(raw.records, bytes);
            let chunks = raw
                .chunks
                .into_iter()
                .map(Ok::<_, std::convert::Infallible>);
            let mut response =
                Body::from_stream(futures_util::stream::iter(chunks)).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(BATCHES_CONTENT_TYPE),
            );
            for (name, value) in [
                ("x-sluice-start-offset", at.offset),
                ("x-sluice-next-offset", raw.next_offset.max(at.offset)),
                ("x-sluice-high-watermark", end),
                ("x-sluice-earliest-offset", earliest),
            ] {
                headers.insert(name, HeaderValue::from(value));
            }
            return Ok(response);
        }
        wait(&mut applied, at.deadline).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_stream::Command;

    use super::*;
    use crate::stream::PartitionSpec;

    async fn partition(dir: &std::path::Path) -> Arc<PartitionGroup> {
        let spec = PartitionSpec::for_test();
        let group = PartitionGroup::open(dir, "n1", spec, 1 << 20)
            .await
            .expect("open");
        for batch in 0..2 {
            let records = (0..5)
                .map(|i| Record::from_value(format!("record {batch}-{i}")))
                .collect();
            let produce = Command::Produce {
                record_count: 5,
                producer: None,
            };
            assert!(
                group
                    .propose(produce, records)
                    .await
                    .expect("produce")
                    .is_ok()
            );
        }
        group
    }

    /// A fetch positioned at offset 2, after which retention moved the
    /// earliest offset to 5: it answers 416 at once instead of an empty 200
    /// when its long-poll runs out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_passing_a_waiting_fetch_answers_out_of_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let group = partition(dir.path()).await;
        group.retain_for_test(5).await;
        for format in [FetchFormat::Json, FetchFormat::Batches] {
            let at = Position {
                group: group.clone(),
                _in_use: None,
                offset: 2,
                since_timestamp: None,
                max_records: 100,
                max_bytes: 1 << 20,
                deadline: tokio::time::Instant::now() + Duration::from_millis(500),
            };
            let answer = match format {
                FetchFormat::Json => fetch_json(at).await,
                FetchFormat::Batches => fetch_batches(at).await,
            };
            match answer {
                Err(BrokerError::OffsetOutOfRange {
                    earliest_offset,
                    high_watermark,
                    ..
                }) => assert_eq!((earliest_offset, high_watermark), (5, 10), "{format:?}"),
                Err(other) => panic!("{format:?}: {other}"),
                Ok(response) => panic!("{format:?}: answered {}", response.status()),
            }
        }
        group.close().await;
    }
}

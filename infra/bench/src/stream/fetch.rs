//! The fetch side: `--fetchers` tasks share the partitions (fetcher `f`
//! reads every partition `p` with `p % fetchers == f`) and read each from
//! offset 0 to its high watermark with
//! `GET /v1/streams/{s}/partitions/{p}/records`, handing every record to
//! the verifier. After the produce phase a partition is done at its high
//! watermark; with `--follow` the fetchers run during it, long-polling,
//! and a partition is done once a fetch sent after the last produce answer
//! reached the high watermark it reported (acks come after the commit, so
//! that watermark covers every acked record).
//!
//! [`fetch_page`] is the one place that knows the wire format
//! (`--fetch-format`): `json` (decoded records) or `batches` (the stored
//! batches, framed: `sluice-client` hands out each frame's batch from the
//! answer's buffer, CRC-checked and decoded here).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sluice_client::Client;
use sluice_client::data::{BodyEncoding, FetchFrom, FetchRequest, FetchResponse};

use super::payload::{self, Stamp};
use super::{REQUEST_TIMEOUT, Run};
use crate::args::FetchFormat;
use crate::report::Latencies;

/// One fetch request's parameters.
pub struct PageRequest<'a> {
    pub stream: &'a str,
    pub partition: u32,
    pub offset: u64,
    pub max_records: u64,
    pub max_bytes: u64,
    pub wait_ms: u64,
}

/// One fetched record, format-independent.
pub struct PageRecord {
    pub offset: u64,
    /// Set for this run's records.
    pub stamp: Option<Stamp>,
    pub value_bytes: u64,
}

/// One fetch answer, format-independent.
pub struct Page {
    pub records: Vec<PageRecord>,
    pub next_offset: u64,
    pub high_watermark: u64,
    /// Size of the answer's body.
    pub wire_bytes: u64,
}

/// Fetches one page in `format`.
pub async fn fetch_page(
    client: &Client,
    format: FetchFormat,
    tag: &str,
    request: &PageRequest<'_>,
) -> anyhow::Result<Page> {
    let fetch = FetchRequest {
        from: FetchFrom::Offset(request.offset),
        max_records: Some(u32::try_from(request.max_records).unwrap_or(u32::MAX)),
        max_bytes: Some(request.max_bytes),
        wait_ms: Some(request.wait_ms),
    };
    let timeout = REQUEST_TIMEOUT + Duration::from_millis(request.wait_ms);
    match format {
        FetchFormat::Json => json_page(client, tag, request, &fetch, timeout).await,
        FetchFormat::Batches => batches_page(client, tag, request, &fetch, timeout).await,
    }
}

/// The stored batches, CRC-checked and decoded here from the answer's one
/// buffer (the client hands out each frame's batch without copying).
async fn batches_page(
    client: &Client,
    tag: &str,
    request: &PageRequest<'_>,
    fetch: &FetchRequest,
    timeout: Duration,
) -> anyhow::Result<Page> {
    let fetched = client
        .fetch_batches(request.stream, request.partition, fetch)
        .timeout(timeout)
        .await?;
    let start = fetched.start_offset;
    let mut records = Vec::new();
    for frame in fetched.frames() {
        let frame = frame?;
        let base = frame.base_offset;
        let (batch, _) = sluice_storage::format::decode_batch(frame.batch)
            .map_err(|e| anyhow::anyhow!("bad batch at offset {base}: {e:?}"))?;
        // Record 0 is the partition command; whole batches may start early.
        for (i, record) in batch.records.iter().skip(1).enumerate() {
            let offset = base + i as u64;
            if offset < start {
                continue;
            }
            let value = std::str::from_utf8(&record.value).ok();
            records.push(PageRecord {
                offset,
                stamp: value.and_then(|v| payload::parse(tag, v)),
                value_bytes: record.value.len() as u64,
            });
        }
    }
    Ok(Page {
        records,
        next_offset: fetched.next_offset,
        high_watermark: fetched.high_watermark,
        wire_bytes: fetched.body.len() as u64,
    })
}

async fn json_page(
    client: &Client,
    tag: &str,
    request: &PageRequest<'_>,
    fetch: &FetchRequest,
    timeout: Duration,
) -> anyhow::Result<Page> {
    // The answer as it came, for its size; decoded from that one buffer.
    let answer = client
        .fetch(request.stream, request.partition, fetch)
        .timeout(timeout)
        .raw()
        .await?;
    answer.error_unless_success()?;
    let page: FetchResponse = answer.json()?;
    Ok(Page {
        records: page
            .records
            .into_iter()
            .map(|r| PageRecord {
                offset: r.offset,
                // A benchmark value is ASCII, so always `utf8`.
                stamp: (r.value_encoding == BodyEncoding::Utf8)
                    .then(|| payload::parse(tag, &r.value))
                    .flatten(),
                value_bytes: r.value.len() as u64,
            })
            .collect(),
        next_offset: page.next_offset,
        high_watermark: page.high_watermark,
        wire_bytes: answer.body.len() as u64,
    })
}

/// Where one partition's read is.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub partition: u32,
    pub next: u64,
    pub high_watermark: u64,
    pub done: bool,
    /// Failed fetches in a row; at [`MAX_FAILURES`] the partition is given up.
    failures: u32,
}

/// Consecutive failed fetches after which a partition is given up (the
/// errors are in the report; its missing records fail the verification).
const MAX_FAILURES: u32 = 20;

/// What the fetch side did.
pub struct Fetch {
    pub records: u64,
    pub value_bytes: u64,
    pub wire_bytes: u64,
    pub requests: u64,
    pub request_latencies: Latencies,
    /// Per record with `--follow`: fetched − produce request sent.
    pub e2e: Latencies,
    pub cursors: Vec<Cursor>,
    /// Run start → the last page with records, in seconds.
    pub last_record_s: f64,
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    value_bytes: AtomicU64,
    wire_bytes: AtomicU64,
    requests: AtomicU64,
    last_record_micros: AtomicU64,
}

struct Fetched {
    request_latencies: Latencies,
    e2e: Latencies,
    cursors: Vec<Cursor>,
}

async fn fetch_loop(
    run: Arc<Run>,
    client: Client,
    mut cursors: Vec<Cursor>,
    counters: Arc<Counters>,
) -> Fetched {
    let args = &run.args;
    let mut out = Fetched {
        request_latencies: Latencies::new(),
        e2e: Latencies::new(),
        cursors: Vec::new(),
    };
    // Long-poll only when one partition is this fetcher's whole work.
    let long_poll = args.follow && cursors.len() == 1;
    while cursors.iter().any(|c| !c.done) {
        if run.fetch_deadline_passed() {
            run.error("fetch: the time limit passed".to_string());
            break;
        }
        let mut progressed = false;
        for cursor in cursors.iter_mut().filter(|c| !c.done) {
            let produced = run.produced.load(Ordering::Acquire);
            // Once everything is produced, nothing new is worth waiting for.
            let wait_ms = if long_poll && !produced {
                args.wait_ms
            } else {
                0
            };
            let request = PageRequest {
                stream: &run.stream,
                partition: cursor.partition,
                offset: cursor.next,
                max_records: args.fetch_max_records,
                max_bytes: args.fetch_max_bytes,
                wait_ms,
            };
            let sent = Instant::now();
            let outcome = fetch_page(&client, args.fetch_format, &run.tag, &request).await;
            let answered = Instant::now();
            counters.requests.fetch_add(1, Ordering::Relaxed);
            let page = match outcome {
                Ok(page) => page,
                Err(error) => {
                    // The first of a streak is reported (the report keeps a few errors).
                    if cursor.failures == 0 {
                        run.error(format!("partition {}: {error:#}", cursor.partition));
                    }
                    cursor.failures += 1;
                    if cursor.failures >= MAX_FAILURES {
                        run.error(format!(
                            "partition {}: given up after {MAX_FAILURES} failed fetches",
                            cursor.partition
                        ));
                        cursor.done = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            cursor.failures = 0;
            out.request_latencies
                .record_micros(answered.duration_since(sent).as_micros() as u64);
            let now_micros = run.micros(answered);
            if let Ok(mut verifier) = run.verifier.lock() {
                for record in &page.records {
                    verifier.fetched(record.stamp.map(|s| s.id), cursor.partition, record.offset);
                }
            }
            if args.follow {
                for stamp in page.records.iter().filter_map(|r| r.stamp) {
                    out.e2e
                        .record_micros(now_micros.saturating_sub(stamp.sent_micros));
                }
            }
            let value_bytes: u64 = page.records.iter().map(|r| r.value_bytes).sum();
            counters
                .records
                .fetch_add(page.records.len() as u64, Ordering::Relaxed);
            counters
                .value_bytes
                .fetch_add(value_bytes, Ordering::Relaxed);
            counters
                .wire_bytes
                .fetch_add(page.wire_bytes, Ordering::Relaxed);
            if !page.records.is_empty() {
                progressed = true;
                counters
                    .last_record_micros
                    .fetch_max(now_micros, Ordering::Relaxed);
            } else if !args.follow && page.next_offset < page.high_watermark {
                // Nothing is produced any more: an empty page below the
                // watermark would never end.
                run.error(format!(
                    "partition {}: empty page at offset {} below the high watermark {}",
                    cursor.partition, page.next_offset, page.high_watermark
                ));
                cursor.done = true;
            }
            cursor.next = page.next_offset;
            cursor.high_watermark = page.high_watermark;
            if produced && cursor.next >= page.high_watermark {
                cursor.done = true;
            }
        }
        if !progressed && !long_poll && args.follow {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    out.cursors = cursors;
    out
}

/// Reads every partition to its end (see the module docs for when that is).
pub async fn run(run: Arc<Run>) -> anyhow::Result<Fetch> {
    let partitions = run.args.partitions as u32;
    let fetchers = run.fetchers();
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for f in 0..fetchers {
        let cursors = (0..partitions)
            .filter(|p| p % fetchers == f)
            .map(|partition| Cursor {
                partition,
                next: 0,
                high_watermark: 0,
                done: false,
                failures: 0,
            })
            .collect();
        tasks.push(tokio::spawn(fetch_loop(
            run.clone(),
            run.client.with_own_pool(),
            cursors,
            counters.clone(),
        )));
    }
    let mut request_latencies = Latencies::new();
    let mut e2e = Latencies::new();
    let mut cursors = Vec::new();
    for task in tasks {
        let fetched = task.await.context("a fetcher panicked")?;
        request_latencies.merge(&fetched.request_latencies);
        e2e.merge(&fetched.e2e);
        cursors.extend(fetched.cursors);
    }
    cursors.sort_by_key(|c| c.partition);
    Ok(Fetch {
        records: counters.records.load(Ordering::Relaxed),
        value_bytes: counters.value_bytes.load(Ordering::Relaxed),
        wire_bytes: counters.wire_bytes.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        request_latencies,
        e2e,
        cursors,
        last_record_s: counters.last_record_micros.load(Ordering::Relaxed) as f64 / 1e6,
    })
}

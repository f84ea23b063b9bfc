//! The stream mode's same-run baseline: the storage engine's raw append
//! rate. `sluice-storage`'s `SegmentLog` is driven directly, as in its
//! `storage_bench` (closed-loop appenders, encoding included), with what
//! the broker does per produce request and nothing around it (no HTTP, no
//! JSON, no Raft): one log per partition opened with the broker's settings
//! (64 MiB segments, `FsyncPolicy::EveryBatch` with group commit, pooled
//! writer — see `data-plane/broker/src/stream/partition.rs`), the same
//! number of records of the same size in batches of the same length, and
//! as many appenders as the run keeps produce requests in flight. A fast
//! engine finishes `--records` in a fraction of a second, too short to
//! measure, so it goes on appending until `--engine-secs` have passed too;
//! segments are released as it goes, so the disk holds only the last few
//! hundred MiB per log.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sluice_storage::{Batch, EncodedBatch, FsyncPolicy, LogConfig, Record, SegmentLog};

use crate::report::{Latencies, per_s, round3};

/// The broker's stream partition log settings (`PartitionGroup::open`).
fn broker_log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        ..LogConfig::default()
    }
}

/// Each log releases its older segments after this many more bytes.
const RELEASE_EVERY: u64 = 256 << 20;

/// What to append.
#[derive(Debug, Clone, Copy)]
pub struct EngineLoad {
    /// Logs (one per partition); appender `i` writes to log `i % logs`.
    pub logs: u64,
    pub appenders: u64,
    pub records: u64,
    pub batch: u64,
    pub size: u64,
    /// Give a key (`k<n>`, as the stream mode sends) to every record.
    pub keyed: bool,
}

fn batch_of(count: u64, size: u64, keyed: bool) -> Batch {
    Batch::data(
        (0..count)
            .map(|i| Record {
                key: keyed.then(|| format!("k{i}").into_bytes()),
                ..Record::from_value(vec![b'x'; size as usize])
            })
            .collect(),
    )
}

/// Appends at least `load.records` records for at least `min_run` in a temp
/// dir under `dir`, giving up at `max_run`; records/s, MB/s (values,
/// 10^6 B) and append latencies.
pub async fn append(
    dir: &Path,
    load: EngineLoad,
    min_run: Duration,
    max_run: Duration,
) -> anyhow::Result<Value> {
    let temp = tempfile::Builder::new()
        .prefix("sluice-bench-engine")
        .tempdir_in(dir)
        .with_context(|| format!("creating a temp dir in {}", dir.display()))?;
    let config = broker_log_config();
    let mut logs = Vec::new();
    for i in 0..load.logs.max(1) {
        let path = temp.path().join(format!("p{i}"));
        let log = SegmentLog::open(&path, config.clone())
            .await
            .with_context(|| format!("opening a segment log in {}", path.display()))?;
        logs.push((log, Arc::new(AtomicU64::new(0))));
    }
    let full = Arc::new(batch_of(load.batch, load.size, load.keyed));
    let tail = Arc::new(batch_of(load.records % load.batch, load.size, load.keyed));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (soon, late) = (started + min_run, started + max_run);
    let mut tasks = Vec::new();
    for i in 0..load.appenders.max(1) {
        let (log, written) = logs[(i % load.logs.max(1)) as usize].clone();
        let (full, tail, next) = (full.clone(), tail.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::new();
            let (mut records, mut encoded_bytes) = (0u64, 0u64);
            loop {
                let first = next.fetch_add(load.batch, Ordering::Relaxed);
                let now = Instant::now();
                if (first >= load.records && now >= soon) || now >= late {
                    break;
                }
                // Past `--records`, whole batches until `min_run` is over.
                let batch = if first >= load.records || load.records - first >= load.batch {
                    &full
                } else {
                    &tail
                };
                let sent = Instant::now();
                let encoded = EncodedBatch::encode(batch).context("encoding a batch")?;
                let len = encoded.len() as u64;
                let offset = log
                    .append_encoded(encoded, None)
                    .await
                    .context("appending a batch")?;
                latencies.record_micros(sent.elapsed().as_micros() as u64);
                records += batch.records.len() as u64;
                encoded_bytes += len;
                let total = written.fetch_add(len, Ordering::Relaxed) + len;
                if total / RELEASE_EVERY != (total - len) / RELEASE_EVERY {
                    log.release_below(offset)
                        .await
                        .context("releasing old segments")?;
                }
            }
            anyhow::Ok((latencies, records, encoded_bytes))
        }));
    }
    let mut latencies = Latencies::new();
    let (mut records, mut encoded_bytes) = (0u64, 0u64);
    for task in tasks {
        let (l, r, e) = task.await.context("an engine appender panicked")??;
        latencies.merge(&l);
        records += r;
        encoded_bytes += e;
    }
    let secs = started.elapsed().as_secs_f64();
    for (log, _) in &logs {
        log.close().await.context("closing a segment log")?;
    }
    drop(logs);
    let config = broker_log_config();
    Ok(json!({
        "dir": dir.display().to_string(),
        "logs": load.logs,
        "appenders": load.appenders,
        "batch": load.batch,
        "keyed": load.keyed,
        "fsync": match config.fsync {
            FsyncPolicy::EveryBatch => "every_batch".to_string(),
            FsyncPolicy::Interval(every) => format!("interval_{}ms", every.as_millis()),
        },
        "segment_bytes": config.segment_bytes,
        "complete": records >= load.records,
        "records": records,
        "min_s": min_run.as_secs_f64(),
        "elapsed_s": round3(secs),
        "records_per_s": per_s(records as f64, secs),
        "mb_per_s": per_s(records as f64 * load.size as f64 / 1e6, secs),
        "encoded_mb_per_s": per_s(encoded_bytes as f64 / 1e6, secs),
        "appends_per_s": per_s(latencies.count() as f64, secs),
        "append_latency_ms": latencies.to_json(),
    }))
}

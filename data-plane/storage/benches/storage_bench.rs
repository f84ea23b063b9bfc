//! Throughput report: the disk's raw sequential write bandwidth with an fdatasync per
//! write, against the engine's group-commit append throughput for the same batch sizes
//! under 1, 8 and 64 concurrent appenders. Prints JSON.
//!
//! `cargo bench -p sluice-storage --bench storage_bench`
//! Environment: `SLUICE_BENCH_SECS` (per case and side, default 3), `SLUICE_BENCH_DIR`
//! (default the system temp dir; must be on the disk being measured),
//! `SLUICE_BENCH_WRITER` (`pooled`, the default, or `dedicated`), `SLUICE_BENCH_CASES`
//! (comma-separated `record_bytes x records x appenders`, e.g. `100x1x64,1024x256x1`),
//! `SLUICE_BENCH_SEGMENT_MIB` (segment size, default the engine's default).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_storage::{Batch, EncodedBatch, LogConfig, Record, SegmentLog, WriterMode};

fn batch(record_bytes: usize, records: usize) -> Batch {
    Batch::data(
        (0..records)
            .map(|i| Record {
                timestamp: 0,
                key: None,
                headers: vec![],
                value: vec![i as u8; record_bytes],
            })
            .collect(),
    )
}

/// Plain `pwrite` + `fdatasync` of `chunk` bytes at a time, appending to one file.
fn raw_bandwidth(dir: &Path, chunk: usize, run_for: Duration) -> (f64, f64) {
    let path = dir.join("raw.bin");
    let file = File::create(&path).expect("create raw file");
    let buf = vec![0x5Au8; chunk];
    let start = Instant::now();
    let mut pos = 0u64;
    let mut total = 0u64;
    let mut writes = 0u64;
    while start.elapsed() < run_for {
        file.write_all_at(&buf, pos).expect("write");
        file.sync_data().expect("fdatasync");
        pos += chunk as u64;
        total += chunk as u64;
        writes += 1;
        if pos > 2 << 30 {
            file.set_len(0).expect("truncate");
            pos = 0;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    (total as f64 / secs, writes as f64 / secs)
}

struct EngineResult {
    appends_per_s: f64,
    bytes_per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn engine(
    dir: &Path,
    b: &Batch,
    appenders: usize,
    run_for: Duration,
    writer: WriterMode,
) -> EngineResult {
    let segment_bytes = std::env::var("SLUICE_BENCH_SEGMENT_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(LogConfig::default().segment_bytes, |mib| mib << 20);
    let config = LogConfig {
        writer,
        segment_bytes,
        ..LogConfig::default()
    };
    let log = SegmentLog::open(dir, config).await.expect("open");
    let encoded_len = b.encoded_len();
    let b = Arc::new(b.clone());
    let deadline = Instant::now() + run_for;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..appenders {
        let log = log.clone();
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let encoded = EncodedBatch::encode(&b).expect("encode");
                log.append_encoded(encoded, None).await.expect("append");
                latencies.push(t.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("appender"));
    }
    let secs = start.elapsed().as_secs_f64();
    log.close().await.expect("close");
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    EngineResult {
        appends_per_s: latencies.len() as f64 / secs,
        bytes_per_s: (latencies.len() * encoded_len) as f64 / secs,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    }
}

fn main() {
    let per_case = Duration::from_secs_f64(
        std::env::var("SLUICE_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    // The disk's speed drifts (other tenants, page cache state), so raw and engine runs
    // alternate in short rounds and each side sums its rounds.
    const ROUNDS: u32 = 3;
    let slice = per_case / ROUNDS;
    let base = std::env::var("SLUICE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let writer = match std::env::var("SLUICE_BENCH_WRITER").as_deref() {
        Ok("dedicated") => WriterMode::Dedicated,
        _ => WriterMode::Pooled,
    };
    let only: Option<Vec<(usize, usize, usize)>> =
        std::env::var("SLUICE_BENCH_CASES").ok().map(|v| {
            v.split(',')
                .filter_map(|c| {
                    let n: Vec<usize> =
                        c.split('x').filter_map(|p| p.trim().parse().ok()).collect();
                    (n.len() == 3).then(|| (n[0], n[1], n[2]))
                })
                .collect()
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Reference: the disk's sequential bandwidth with large (1 MiB) fsynced writes.
    let disk_reference = || {
        let dir = tempfile::tempdir_in(&base).expect("tempdir");
        raw_bandwidth(dir.path(), 1 << 20, per_case).0
    };
    let reference_before = disk_reference();
    let mut cases = Vec::new();
    let mut batched = Vec::new();
    let mut single_64 = 0.0;
    for record_bytes in [100usize, 1024, 16 * 1024] {
        for records in [1usize, 16, 256] {
            let b = batch(record_bytes, records);
            let chunk = b.encoded_len();
            for appenders in [1usize, 8, 64] {
                if only
                    .as_ref()
                    .is_some_and(|o| !o.contains(&(record_bytes, records, appenders)))
                {
                    continue;
                }
                let (mut raw_bytes, mut raw_writes) = (0.0, 0.0);
                let (mut eng_bytes, mut eng_appends) = (0.0, 0.0);
                let mut p50 = Vec::new();
                let mut p99 = Vec::new();
                for _ in 0..ROUNDS {
                    let dir = tempfile::tempdir_in(&base).expect("tempdir");
                    let (bw, ws) = raw_bandwidth(dir.path(), chunk, slice);
                    raw_bytes += bw;
                    raw_writes += ws;
                    let dir = tempfile::tempdir_in(&base).expect("tempdir");
                    let r = rt.block_on(engine(dir.path(), &b, appenders, slice, writer));
                    eng_bytes += r.bytes_per_s;
                    eng_appends += r.appends_per_s;
                    p50.push(r.p50_us);
                    p99.push(r.p99_us);
                }
                let rounds = f64::from(ROUNDS);
                let (raw_bw, raw_ws) = (raw_bytes / rounds, raw_writes / rounds);
                let (eng_bw, eng_as) = (eng_bytes / rounds, eng_appends / rounds);
                p50.sort_unstable();
                p99.sort_unstable();
                let ratio = eng_bw / raw_bw;
                if records >= 16 {
                    batched.push((record_bytes, records, appenders, ratio));
                }
                if records == 1 && appenders == 64 && record_bytes == 100 {
                    single_64 = eng_as;
                }
                let case = json!({
                    "record_bytes": record_bytes,
                    "records_per_batch": records,
                    "batch_bytes": chunk,
                    "appenders": appenders,
                    "raw_mib_s": raw_bw / 1048576.0,
                    "raw_fsyncs_s": raw_ws,
                    "engine_mib_s": eng_bw / 1048576.0,
                    "engine_appends_s": eng_as,
                    "engine_records_s": eng_as * records as f64,
                    "engine_vs_raw": ratio,
                    "append_p50_us_median": p50[p50.len() / 2],
                    "append_p99_us_median": p99[p99.len() / 2],
                });
                eprintln!("{case}");
                cases.push(case);
            }
        }
    }
    let reference_after = disk_reference();
    let disk_mib_s = (reference_before + reference_after) / 2.0 / 1048576.0;
    let best_batched_mib_s = cases
        .iter()
        .filter(|c| c["records_per_batch"].as_u64().unwrap_or(0) >= 16)
        .filter_map(|c| c["engine_mib_s"].as_f64())
        .fold(0.0, f64::max);
    let single_appender_batched: Vec<f64> =
        batched.iter().filter(|c| c.2 == 1).map(|c| c.3).collect();
    let min_single = single_appender_batched
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let min_all = batched.iter().map(|c| c.3).fold(f64::INFINITY, f64::min);
    let report = json!({
        "writer": format!("{writer:?}"),
        "seconds_per_case_per_side": per_case.as_secs_f64(),
        "rounds": ROUNDS,
        "dir": base.display().to_string(),
        "cases": cases,
        "summary": {
            "disk_1MiB_fsync_writes_mib_s": disk_mib_s,
            "best_batched_engine_mib_s": best_batched_mib_s,
            "best_batched_engine_vs_disk": best_batched_mib_s / disk_mib_s,
            "batched_min_engine_vs_raw_single_appender": min_single,
            "batched_min_engine_vs_raw_any_appenders": min_all,
            "batched_target": 0.8,
            "single_record_100B_64_appenders_appends_s": single_64,
            "single_record_target_appends_s": 100000,
        }
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
}

//! Same-run baselines the queue and stream figures are divided by: the
//! broker's `/healthz` round-trip rate at the publishers' concurrency (what
//! the HTTP stack alone does on this machine right now) and the disk's rate
//! of `pwrite` + `fdatasync` of one publish batch's payload (the floor a
//! durable confirm pays when nothing is group-committed). The stream mode's
//! storage-engine baseline is in `engine.rs`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Map, Value, json};
use sluice_client::{Client, RetryPolicy};

use crate::report::{Latencies, round3};

/// Both baselines, `{"healthz": .., "fsync": ..}`: `concurrency` `/healthz`
/// loops over `clients` clients, then fdatasync'd writes of `chunk` bytes in `dir`.
pub async fn http_and_disk(
    broker_url: &str,
    clients: usize,
    concurrency: usize,
    dir: PathBuf,
    chunk: usize,
    run_for: Duration,
) -> anyhow::Result<Map<String, Value>> {
    let mut baseline = Map::new();
    let healthz = healthz(broker_url, clients, concurrency, run_for)
        .await
        .context("the /healthz baseline")?;
    baseline.insert("healthz".into(), healthz);
    let fsync = tokio::task::spawn_blocking(move || fsync(&dir, chunk, run_for))
        .await
        .context("the fsync baseline panicked")?
        .context("the fsync baseline")?;
    baseline.insert("fsync".into(), fsync);
    Ok(baseline)
}

/// `concurrency` loops of `GET {broker}/healthz` spread over `clients` HTTP clients for `run_for`.
pub async fn healthz(
    broker_url: &str,
    clients: usize,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<Value> {
    let pool: Vec<Client> = (0..clients.max(1))
        .map(|_| Client::new(broker_url).with_retry(RetryPolicy::NONE))
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let client = pool[i % pool.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::new();
            while started.elapsed() < run_for {
                let sent = Instant::now();
                client.healthz().await?;
                latencies.record_micros(sent.elapsed().as_micros() as u64);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Latencies::new();
    for task in tasks {
        all.merge(&task.await.context("a healthz task panicked")??);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "concurrency": concurrency,
        "requests": all.count(),
        "requests_per_s": round3(all.count() as f64 / secs),
        "latency_ms": all.to_json(),
    }))
}

/// Appends `chunk` bytes at a time to a file in `dir`, `fdatasync` after each, for `run_for`.
pub fn fsync(dir: &Path, chunk: usize, run_for: Duration) -> anyhow::Result<Value> {
    let file_dir = tempfile::Builder::new()
        .prefix("sluice-bench-fsync")
        .tempdir_in(dir)
        .with_context(|| format!("creating a temp dir in {}", dir.display()))?;
    let path = file_dir.path().join("raw.bin");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let buffer = vec![0x5a_u8; chunk.max(1)];
    let started = Instant::now();
    let mut position = 0u64;
    let mut writes = 0u64;
    while started.elapsed() < run_for {
        file.write_all_at(&buffer, position)
            .with_context(|| format!("writing {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync of {}", path.display()))?;
        position += buffer.len() as u64;
        writes += 1;
        if position > 1 << 30 {
            file.set_len(0).context("truncating the raw file")?;
            position = 0;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "dir": dir.display().to_string(),
        "write_bytes": buffer.len(),
        "fsyncs_per_s": round3(writes as f64 / secs),
        "mb_per_s": round3(writes as f64 * buffer.len() as f64 / 1e6 / secs),
    }))
}

//! Criterion benchmark: one appender, one batch per append (each append waits for its
//! fsync), for 100 B, 1 KiB and 16 KiB records in batches of 1, 16 and 256 records.
//!
//! `cargo bench -p sluice-storage --bench append`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_storage::{Batch, LogConfig, Record, SegmentLog};

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

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for record_bytes in [100usize, 1024, 16 * 1024] {
        for records in [1usize, 16, 256] {
            let b = batch(record_bytes, records);
            group.throughput(Throughput::Bytes((record_bytes * records) as u64));
            let id = BenchmarkId::new(format!("{record_bytes}B"), format!("{records}/batch"));
            group.bench_with_input(id, &b, |bench, b| {
                let dir = tempfile::tempdir().expect("tempdir");
                let log = rt
                    .block_on(SegmentLog::open(dir.path(), LogConfig::default()))
                    .expect("open");
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    rt.block_on(async {
                        for _ in 0..iters {
                            log.append(b).await.expect("append");
                        }
                    });
                    let took = start.elapsed();
                    // Keep the disk from filling up; not part of the measurement.
                    rt.block_on(async {
                        log.roll().await.expect("roll");
                        log.release_below(log.next_offset()).await.expect("release");
                    });
                    took
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);

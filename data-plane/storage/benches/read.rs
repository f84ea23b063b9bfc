//! Criterion benchmark: sequential reads of 64 MiB of 1 KiB records (batches of 16),
//! decoded with CRC checks, and as raw segment slices.
//!
//! `cargo bench -p sluice-storage --bench read`

use std::os::unix::fs::FileExt;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_storage::{Batch, LogConfig, Record, SegmentLog};

const TOTAL: usize = 64 * 1024 * 1024;

fn read(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = rt
        .block_on(SegmentLog::open(
            dir.path(),
            LogConfig {
                segment_bytes: 16 * 1024 * 1024,
                ..LogConfig::default()
            },
        ))
        .expect("open");
    let batch = Batch::data(
        (0..16)
            .map(|i| Record {
                timestamp: i,
                key: None,
                headers: vec![],
                value: vec![i as u8; 1024],
            })
            .collect(),
    );
    rt.block_on(async {
        for _ in 0..TOTAL / (16 * 1024) {
            log.append(&batch).await.expect("append");
        }
    });
    let mut group = c.benchmark_group("read");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.bench_function("decode_64MiB", |b| {
        b.iter(|| {
            let mut offset = 0;
            let mut n = 0;
            loop {
                let batches = log.read(offset, 1024 * 1024).expect("read");
                let Some(last) = batches.last() else { break };
                offset = last.offset + 1;
                n += batches.len();
            }
            n
        })
    });
    group.bench_function("slices_64MiB", |b| {
        let mut buf = vec![0u8; 2 * 1024 * 1024];
        b.iter(|| {
            let mut offset = 0;
            let mut bytes = 0;
            while let Some(s) = log.slice(offset, 1024 * 1024).expect("slice") {
                // Stands in for sendfile: copy the range out of the page cache.
                s.file
                    .read_exact_at(&mut buf[..s.len as usize], s.position)
                    .expect("pread");
                bytes += s.len;
                offset = s.next_offset;
            }
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);

//! Crash test: a child process (this test binary, re-invoked) appends from several
//! tasks and prints every acknowledged offset; the parent SIGKILLs it at random
//! moments, many times over the same directory. After every kill, every acknowledged
//! batch must be present and intact, offsets are never reused, and nothing after the
//! valid tail is served.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use sluice_storage::{Batch, LogConfig, Record, SegmentLog};

const CHILD_DIR: &str = "SLUICE_CRASH_CHILD_DIR";
const CHILD_GEN: &str = "SLUICE_CRASH_CHILD_GEN";
const APPENDERS: u64 = 8;

fn config() -> LogConfig {
    // Small segments so kills also land during rolls.
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

fn expected_batch(generation: u64, task: u64, n: u64) -> Batch {
    let size = ((generation * 7 + task * 13 + n * 31) % 1500) as usize + 1;
    Batch::data(vec![Record {
        timestamp: (generation * 1_000_000 + n) as i64,
        key: Some(format!("{generation}/{task}/{n}").into_bytes()),
        headers: vec![("task".into(), task.to_le_bytes().to_vec())],
        value: (0..size).map(|i| (i as u64 ^ n ^ task) as u8).collect(),
    }])
}

/// The child: appends until killed. Does nothing in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let generation: u64 = std::env::var(CHILD_GEN)
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let log = SegmentLog::open(&dir, config()).await.unwrap();
        let mut tasks = Vec::new();
        for task in 0..APPENDERS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                // Bounded so a child the parent failed to kill still ends.
                for n in 0..200_000u64 {
                    let offset = log
                        .append(&expected_batch(generation, task, n))
                        .await
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {offset} {generation} {task} {n}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn sigkill_during_appends_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    let mut rng = rand::rng();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let mut generation = 0u64;
    // At least MIN_KILLS however slow the machine (a busy CI host once managed
    // only 9 in a fixed time budget), and up to 40 while within 15 s.
    const MIN_KILLS: u64 = 12;
    while generation < MIN_KILLS || (generation < 40 && started.elapsed() < Duration::from_secs(15))
    {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_GEN, generation.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(5..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        for line in lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.first() != Some(&"ACK") {
                continue;
            }
            let nums: Vec<u64> = parts[1..].iter().map(|p| p.parse().unwrap()).collect();
            let previous = acked.insert(nums[0], (nums[1], nums[2], nums[3]));
            assert!(previous.is_none(), "offset {} acknowledged twice", nums[0]);
        }
        rt.block_on(verify(dir.path(), &acked));
        generation += 1;
    }
    eprintln!(
        "{generation} kills, {} acknowledged batches verified in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(
        acked.len() > 100,
        "children acknowledged too little: {}",
        acked.len()
    );
}

async fn verify(dir: &std::path::Path, acked: &BTreeMap<u64, (u64, u64, u64)>) {
    let log = SegmentLog::open(dir, config()).await.unwrap();
    // Everything that is served decodes (CRC checked) and is in order...
    let all = log.read(0, usize::MAX).unwrap();
    assert!(all.windows(2).all(|w| w[0].offset < w[1].offset));
    // ... every acknowledged batch is among it, intact (one scan, not a
    // read per offset: the log grows with every kill) ...
    let served: BTreeMap<u64, _> = all.iter().map(|b| (b.offset, &b.records)).collect();
    for (&offset, &(generation, task, n)) in acked {
        let records = served
            .get(&offset)
            .unwrap_or_else(|| panic!("acknowledged offset {offset} missing"));
        assert_eq!(
            **records,
            expected_batch(generation, task, n).records,
            "acknowledged offset {offset} has the wrong content"
        );
    }
    log.verify().unwrap();
    // ... and nothing is served past the recovered tail.
    let next = log.next_offset();
    assert_eq!(all.last().map_or(0, |b| b.offset + 1), next);
    assert!(log.read(next, 1 << 20).unwrap().is_empty());
    log.close().await.unwrap();
}

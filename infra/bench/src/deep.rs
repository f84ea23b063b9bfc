//! What `queue --backlog` watches beyond the figures of single moments
//! (issue 21): the broker's memory sampled through the whole run, by phase
//! (filling, restarting, draining), so a flat line is seen rather than
//! assumed; the page cache emptied of the broker's files for a cold drain;
//! and every message's index checked off as it arrives, so "nothing lost"
//! is counted message by message, not inferred from a total.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::report::round3;

/// How often the broker's memory is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Points kept per phase in the reported series (thinned by halving).
const SERIES_POINTS: usize = 48;

/// A part of the run, for the memory it was sampled in.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    Fill = 0,
    Restart = 1,
    Drain = 2,
}

const PHASES: [&str; 3] = ["fill", "restart", "drain"];

#[derive(Debug, Default, Clone)]
struct Samples {
    count: u64,
    peak_anonymous: u64,
    peak_total: u64,
    /// (seconds into the phase, anonymous bytes), every `stride`-th sample.
    series: Vec<(f64, u64)>,
    stride: u64,
    started: Option<Instant>,
}

impl Samples {
    fn add(&mut self, at: Instant, anonymous: u64, total: u64) {
        let started = *self.started.get_or_insert(at);
        self.peak_anonymous = self.peak_anonymous.max(anonymous);
        self.peak_total = self.peak_total.max(total);
        self.stride = self.stride.max(1);
        if self.count.is_multiple_of(self.stride) {
            self.series
                .push((at.duration_since(started).as_secs_f64(), anonymous));
            if self.series.len() > SERIES_POINTS {
                // Keep every other point and sample half as often from here.
                let kept = self.series.iter().step_by(2).copied().collect();
                self.series = kept;
                self.stride *= 2;
            }
        }
        self.count += 1;
    }

    fn report(&self) -> Value {
        let mb = |bytes: u64| round3(bytes as f64 / 1e6);
        json!({
            "samples": self.count,
            "peak_anonymous_mb": mb(self.peak_anonymous),
            "peak_rss_mb": mb(self.peak_total),
            "anonymous_mb_series": self
                .series
                .iter()
                .map(|(secs, bytes)| json!([round3(*secs), mb(*bytes)]))
                .collect::<Vec<_>>(),
        })
    }
}

/// Samples the broker's memory every [`SAMPLE_EVERY`] until stopped.
pub struct MemoryWatch {
    pid: Arc<AtomicU32>,
    phase: Arc<AtomicUsize>,
    samples: Arc<Mutex<[Samples; 3]>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MemoryWatch {
    pub fn start(pid: u32) -> MemoryWatch {
        let pid = Arc::new(AtomicU32::new(pid));
        let phase = Arc::new(AtomicUsize::new(Phase::Fill as usize));
        let samples: Arc<Mutex<[Samples; 3]>> = Arc::default();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn({
            let (pid, phase, samples) = (pid.clone(), phase.clone(), samples.clone());
            async move {
                loop {
                    let status = crate::process::read_status(pid.load(Ordering::Relaxed));
                    if let Ok(status) = status
                        && let Ok(mut samples) = samples.lock()
                    {
                        samples[phase.load(Ordering::Relaxed)].add(
                            Instant::now(),
                            status.anonymous_bytes,
                            status.rss_bytes,
                        );
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }
        });
        MemoryWatch {
            pid,
            phase,
            samples,
            stop,
            task,
        }
    }

    /// Samples from now on belong to `phase`, of the broker `pid`.
    pub fn enter(&self, phase: Phase, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
        self.phase.store(phase as usize, Ordering::Relaxed);
    }

    /// Stops sampling; the peaks and series of each phase.
    pub async fn finish(self) -> Value {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let mut report = serde_json::Map::new();
        for (name, phase) in PHASES.iter().zip(samples.iter()) {
            if phase.count > 0 {
                report.insert(name.to_string(), phase.report());
            }
        }
        Value::Object(report)
    }
}

/// Makes the kernel drop every file under `dir` from its page cache
/// (written back first, since only clean pages can be dropped); answers
/// the files, their bytes, and the machine's page cache before and after.
pub fn evict_cache(dir: &Path) -> anyhow::Result<Value> {
    let cached_before = cached_bytes();
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                // A file may vanish under us (a purged segment): skip it.
                let Ok(file) = std::fs::File::open(entry.path()) else {
                    continue;
                };
                let _ = file.sync_data();
                advise_dont_need(&file);
                files += 1;
                bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let mb = |b: Option<u64>| b.map(|b| round3(b as f64 / 1e6));
    Ok(json!({
        "files": files,
        "file_mb": round3(bytes as f64 / 1e6),
        "page_cache_mb_before": mb(cached_before),
        "page_cache_mb_after": mb(cached_bytes()),
    }))
}

fn advise_dont_need(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: an advice call on a descriptor that lives through the call.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// `Cached:` of `/proc/meminfo`.
fn cached_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("Cached:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Which message indexes arrived: one bit each.
pub struct Checklist {
    bits: Vec<AtomicU64>,
    len: u64,
}

impl Checklist {
    pub fn new(messages: u64) -> Checklist {
        Checklist {
            bits: (0..messages.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            len: messages,
        }
    }

    /// Checks `index` off; false when it was already (or is out of range).
    pub fn check(&self, index: u64) -> bool {
        let Some(word) = self
            .bits
            .get((index / 64) as usize)
            .filter(|_| index < self.len)
        else {
            return false;
        };
        let bit = 1u64 << (index % 64);
        word.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// How many distinct indexes arrived.
    pub fn distinct(&self) -> u64 {
        self.bits
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checklist_counts_each_index_once() {
        let list = Checklist::new(130);
        assert!(list.check(0));
        assert!(list.check(129));
        assert!(!list.check(129));
        assert!(!list.check(130));
        assert_eq!(list.distinct(), 2);
    }

    #[test]
    fn a_long_phase_keeps_a_bounded_series_with_its_peak() {
        let mut samples = Samples::default();
        let start = Instant::now();
        for i in 0..1000u64 {
            samples.add(start + Duration::from_millis(i * 250), i, 2 * i);
        }
        assert!(samples.series.len() <= SERIES_POINTS);
        assert_eq!(samples.peak_anonymous, 999);
        assert_eq!(samples.peak_total, 1998);
    }
}

//! What a running process costs, read from Linux's `/proc/<pid>`: CPU time
//! (`utime + stime` of `stat`), resident memory and threads (`status`) and
//! open files (the entries of `fd/`). The broker's figures for the `queues`
//! mode (idle CPU, memory, files per queue) and its memory for `queue
//! --backlog` come from here, so there is one parser of each file.
//!
//! Only a process this tool started can be read this way (`--spawn`);
//! against `make dev` the callers report these figures as null.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::report::round3;

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat`: the
/// kernel's `USER_HZ`, which is what `sysconf(_SC_CLK_TCK)` returns. It is
/// part of the kernel's user-space ABI and 100 on every architecture this
/// runs on (x86-64, aarch64), so it is a constant here rather than a libc
/// call.
pub const USER_HZ: u64 = 100;

/// The fields of `/proc/<pid>/status` used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Everything resident (`VmRSS`), file pages such as mapped segments included.
    pub rss_bytes: u64,
    /// Heap and stacks (`RssAnon`): what the process cannot give back to the page cache.
    pub anonymous_bytes: u64,
    pub threads: u64,
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at: Instant,
    /// `utime + stime` in [`USER_HZ`] ticks, every thread's (exited ones included).
    pub cpu_ticks: u64,
    pub status: Status,
    pub open_files: u64,
}

/// `utime + stime` from the text of `/proc/<pid>/stat`.
///
/// The second field, the command name in parentheses, may itself hold spaces
/// and parentheses, so fields are counted from the last `)`: `state` is
/// field 3, `utime` 14 and `stime` 15 (proc(5)).
pub fn cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let (_, after_name) = stat
        .rsplit_once(')')
        .context("no `)` closing the command name")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize, name: &str| -> anyhow::Result<u64> {
        let text = fields
            .get(number - 3)
            .with_context(|| format!("field {number} ({name}) missing"))?;
        text.parse()
            .with_context(|| format!("field {number} ({name}) is not a number: {text:?}"))
    };
    Ok(field(14, "utime")? + field(15, "stime")?)
}

/// `VmRSS`, `RssAnon` and `Threads` from the text of `/proc/<pid>/status`.
pub fn status(text: &str) -> anyhow::Result<Status> {
    let value = |name: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .with_context(|| format!("no {name} line"))?;
        let number = line
            .split_whitespace()
            .next()
            .with_context(|| format!("{name} has no value"))?;
        number
            .parse()
            .with_context(|| format!("{name} is not a number: {number:?}"))
    };
    Ok(Status {
        // The kernel writes these two in kB, meaning KiB.
        rss_bytes: value("VmRSS")? * 1024,
        anonymous_bytes: value("RssAnon")? * 1024,
        threads: value("Threads")?,
    })
}

/// Reads `/proc/<pid>/status`.
pub fn read_status(pid: u32) -> anyhow::Result<Status> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status(&text).with_context(|| format!("parsing {path}"))
}

/// Reads CPU time, memory, threads and open files of `pid`.
pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let at = Instant::now();
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let cpu_ticks = cpu_ticks(&stat).with_context(|| format!("parsing {path}"))?;
    let fd_dir = format!("/proc/{pid}/fd");
    let mut open_files = 0;
    for entry in std::fs::read_dir(&fd_dir).with_context(|| format!("listing {fd_dir}"))? {
        // A descriptor closed while we list it is simply not counted.
        if entry.is_ok() {
            open_files += 1;
        }
    }
    Ok(Sample {
        at,
        cpu_ticks,
        status: read_status(pid)?,
        open_files,
    })
}

/// CPU time between two samples as a percentage of one core.
pub fn cpu_percent(from: &Sample, to: &Sample) -> f64 {
    let secs = to.at.saturating_duration_since(from.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    let cpu_secs = to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64 / USER_HZ as f64;
    100.0 * cpu_secs / secs
}

/// A process left alone for a while: its CPU use over the window and its
/// memory, threads and open files at the end.
#[derive(Debug, Clone)]
pub struct Idle {
    pub secs: f64,
    pub cpu_percent_of_core: f64,
    pub end: Sample,
}

impl Idle {
    pub fn to_json(&self) -> Value {
        let mb = |bytes: u64| round3(bytes as f64 / 1e6);
        json!({
            "cpu_pct_of_core": round3(self.cpu_percent_of_core),
            "rss_mb": mb(self.end.status.rss_bytes),
            "anonymous_mb": mb(self.end.status.anonymous_bytes),
            "open_files": self.end.open_files,
            "threads": self.end.status.threads,
            "secs": round3(self.secs),
        })
    }
}

/// Samples `pid`, waits `window` without touching it, samples again.
pub async fn measure_idle(pid: u32, window: Duration) -> anyhow::Result<Idle> {
    let start = sample(pid)?;
    tokio::time::sleep(window).await;
    let end = sample(pid)?;
    if end.cpu_ticks < start.cpu_ticks {
        bail!("pid {pid}: CPU time went backwards (was the process replaced?)");
    }
    Ok(Idle {
        secs: end.at.duration_since(start.at).as_secs_f64(),
        cpu_percent_of_core: cpu_percent(&start, &end),
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like the kernel's line (1 s user + 0.25 s system), with a
    // command name made awkward on purpose: a space and a `)` inside it.
    const STAT: &str = "4242 (sluice) br ker) S 1 4242 4242 0 -1 4194560 2763 0 0 0 \
                        100 25 0 0 20 0 17 0 123456 1234567 8910 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn cpu_ticks_are_utime_plus_stime_counted_after_the_last_parenthesis() {
        assert_eq!(cpu_ticks(STAT).expect("parses"), 125);
    }

    #[test]
    fn a_short_or_garbled_stat_names_the_field() {
        let error = cpu_ticks("1 (x) S 1 2 3")
            .expect_err("too short")
            .to_string();
        assert!(error.contains("utime"), "{error}");
        let error = cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 oops 5")
            .expect_err("not a number")
            .to_string();
        assert!(error.contains("field 14 (utime)"), "{error}");
        assert!(cpu_ticks("no parenthesis").is_err());
    }

    #[test]
    fn status_reads_kib_as_bytes_and_the_thread_count() {
        let text = "Name:\tsluice-broker\nVmPeak:\t  900000 kB\nVmRSS:\t  395000 kB\n\
                    RssAnon:\t  300000 kB\nRssFile:\t   95000 kB\nThreads:\t17\n";
        assert_eq!(
            status(text).expect("parses"),
            Status {
                rss_bytes: 395_000 * 1024,
                anonymous_bytes: 300_000 * 1024,
                threads: 17,
            }
        );
        let error = status("VmRSS:\t1 kB\nThreads:\t1\n")
            .expect_err("no RssAnon")
            .to_string();
        assert!(error.contains("RssAnon"), "{error}");
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        let at = Instant::now();
        let sample = |ticks: u64, after: Duration| Sample {
            at: at + after,
            cpu_ticks: ticks,
            status: Status {
                rss_bytes: 0,
                anonymous_bytes: 0,
                threads: 1,
            },
            open_files: 0,
        };
        // 65 ticks of 10 ms over one second: 65 % of a core.
        let percent = cpu_percent(
            &sample(10, Duration::ZERO),
            &sample(75, Duration::from_secs(1)),
        );
        assert!((percent - 65.0).abs() < 1e-9, "{percent}");
        // Two busy cores over two seconds: 200 %.
        let percent = cpu_percent(
            &sample(0, Duration::ZERO),
            &sample(400, Duration::from_secs(2)),
        );
        assert!((percent - 200.0).abs() < 1e-9, "{percent}");
        assert_eq!(
            cpu_percent(&sample(0, Duration::ZERO), &sample(5, Duration::ZERO)),
            0.0
        );
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = sample(std::process::id()).expect("reads /proc/self");
        assert!(sample.status.threads >= 1);
        assert!(sample.open_files >= 1);
        assert!(sample.status.rss_bytes > 0);
    }
}

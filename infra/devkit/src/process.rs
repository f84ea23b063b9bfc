//! `ChildProcess`: a supervised child (the control plane, a broker, ...) that dies with us.
//!
//! The child gets its own process group, so a Ctrl-C in the terminal reaches only the
//! supervisor, which then stops its children in a chosen order; and it gets SIGKILL from
//! the kernel if the supervisor dies without cleaning up.

use std::{
    fs::{self, OpenOptions},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;

use crate::{
    error::{DevkitError, IoContext, Result},
    logtail, net,
    spawn::{self, Target},
};

/// How long a child gets between SIGTERM and SIGKILL when dropped or stopped.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Where a child's stdout and stderr go.
#[derive(Clone, Debug)]
pub enum Output {
    /// Share our terminal.
    Inherit,
    /// Discard.
    Null,
    /// Append both streams to this file (its directory is created).
    LogFile(PathBuf),
}

/// A running child process; stopped (SIGTERM, grace period, SIGKILL) when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log_file: Option<PathBuf>,
    /// Size of the log file when the child started: tails show only this run's output.
    log_start: u64,
    exited: Option<ExitStatus>,
}

impl ChildProcess {
    /// Starts `command` under the display name `name` with its output sent to `output`.
    pub fn spawn(name: impl Into<String>, mut command: Command, output: Output) -> Result<Self> {
        let name = name.into();
        let mut log_start = 0;
        let log_file = match output {
            Output::Inherit => None,
            Output::Null => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
                None
            }
            Output::LogFile(path) => {
                let file = open_log(&path)?;
                log_start = file.metadata().map(|m| m.len()).unwrap_or(0);
                let copy = file
                    .try_clone()
                    .io_context(|| format!("duplicating handle of {}", path.display()))?;
                command.stdout(copy).stderr(file);
                Some(path)
            }
        };
        command.stdin(Stdio::null()).process_group(0);
        let program = command.get_program().to_string_lossy().into_owned();
        let child = spawn::spawn_tied_to_process(command, Signal::SIGKILL)
            .io_context(|| format!("starting `{name}` ({program})"))?;
        Ok(Self {
            name,
            child,
            log_file,
            log_start,
            exited: None,
        })
    }

    /// The display name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The log file, when the output goes to one.
    pub fn log_file(&self) -> Option<&Path> {
        self.log_file.as_deref()
    }

    /// The last `max_lines` lines this child wrote to its log file.
    pub fn log_tail(&self, max_lines: usize) -> String {
        match &self.log_file {
            Some(path) => logtail::tail(path, self.log_start, max_lines),
            None => "(output not captured)".to_string(),
        }
    }

    /// How the child exited, or `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .io_context(|| format!("checking on `{}`", self.name))?;
        }
        Ok(self.exited)
    }

    /// Fails with the exit status and the log tail if the child is no longer running.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.try_wait()? {
            None => Ok(()),
            Some(status) => Err(DevkitError::ChildExited {
                name: self.name.clone(),
                status,
                // A crash's backtrace would fill the tail and hide the error above it.
                log_tail: without_backtrace_frames(&self.log_tail(400), 40),
            }),
        }
    }

    /// Waits until `url` answers 200, failing early (with the log tail) if the child exits.
    pub fn wait_http_ok(&mut self, url: &str, timeout: Duration) -> Result<()> {
        self.wait_http_ok_unless(url, timeout, &AtomicBool::new(false))
    }

    /// Like [`ChildProcess::wait_http_ok`], but gives up with [`DevkitError::Cancelled`]
    /// once `cancel` is set (e.g. by a Ctrl-C handler).
    pub fn wait_http_ok_unless(
        &mut self,
        url: &str,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let still_worth_waiting = || {
            if cancel.load(Ordering::Relaxed) {
                return Err(DevkitError::Cancelled);
            }
            self.ensure_running()
        };
        net::wait_http_ok_while(url, timeout, still_worth_waiting).map_err(|err| match err {
            DevkitError::HttpNotReady { url, secs, last } => DevkitError::HttpNotReady {
                url,
                secs,
                last: format!(
                    "{last}; log tail of `{}`:\n{}",
                    self.name,
                    self.log_tail(40)
                ),
            },
            other => other,
        })
    }

    /// Stops the child and its process group: SIGTERM, `grace`, then SIGKILL.
    pub fn stop_with_grace(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let what = format!("`{}` (pid {})", self.name, self.child.id());
        let status = spawn::stop_child(
            &mut self.child,
            Target::Group,
            Signal::SIGTERM,
            grace,
            &what,
        )?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Stops the child with the default grace period of 10 s.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.stop_with_grace(DEFAULT_GRACE)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // Nothing useful to do with an error here; the kernel's SIGKILL on our own
            // death is the last line of defence.
            let _ = self.stop();
        }
    }
}

/// Opens `path` for appending, creating its directory.
pub(crate) fn open_log(path: &Path) -> Result<fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .io_context(|| format!("opening log file {}", path.display()))
}

/// Deadline helper shared with the Postgres code: `now + timeout`, saturating.
pub(crate) fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or(now)
}
/// The last `max_lines` lines of `tail` that are not frames of a Rust
/// backtrace (`  12: path::to::fn` and `at src/file.rs:1:2` lines).
fn without_backtrace_frames(tail: &str, max_lines: usize) -> String {
    let is_frame = |line: &str| {
        let line = line.trim_start();
        line.starts_with("at ")
            || line
                .split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let kept: Vec<&str> = tail.lines().filter(|l| !is_frame(l)).collect();
    kept[kept.len().saturating_sub(max_lines)..].join("\n")
}

#[cfg(test)]
mod tail_tests {
    use super::without_backtrace_frames;

    #[test]
    fn a_backtrace_does_not_hide_the_error_above_it() {
        let tail = "Error: binding 127.0.0.1:4000: address in use\n\nStack backtrace:\n   0: anyhow::error::new\n             at src/error.rs:1:2\n  11: tokio::block_on\n             at src/rt.rs:89:9";
        assert_eq!(
            without_backtrace_frames(tail, 3),
            "Error: binding 127.0.0.1:4000: address in use\n\nStack backtrace:"
        );
    }
}

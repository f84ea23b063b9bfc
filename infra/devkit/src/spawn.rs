//! Spawning children that die with this process, and stopping them politely.
//!
//! Linux delivers the parent-death signal (`PR_SET_PDEATHSIG`) when the *thread* that
//! forked the child exits, not the process. Tests and async runtimes spawn from short-lived
//! threads, so every child is forked by one dedicated thread that lives as long as the
//! process: the signal then fires exactly when the process dies, however it dies.

use std::{
    io,
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus},
    sync::{OnceLock, mpsc},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{self, Signal},
    unistd::Pid,
};

use crate::error::{DevkitError, IoContext, Result};

type Request = (Command, mpsc::SyncSender<io::Result<Child>>);

/// The channel to the spawner thread; `None` if that thread could not be started.
static SPAWNER: OnceLock<Option<mpsc::Sender<Request>>> = OnceLock::new();

fn start_spawner() -> Option<mpsc::Sender<Request>> {
    let (tx, rx) = mpsc::channel::<Request>();
    thread::Builder::new()
        .name("devkit-spawner".into())
        .spawn(move || {
            // The static sender is never dropped, so this loop (and the thread) never ends.
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        })
        .ok()?;
    Some(tx)
}

/// Spawns `command` so that the kernel sends it `death_signal` when this process dies.
pub(crate) fn spawn_tied_to_process(
    mut command: Command,
    death_signal: Signal,
) -> io::Result<Child> {
    let parent = nix::unistd::getpid();
    // SAFETY: runs in the forked child before exec. std runs it after the uid/gid change
    // (which would otherwise clear the death signal); it only makes async-signal-safe
    // system calls and does not allocate.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(death_signal).map_err(io::Error::from)?;
            // If we died between fork and prctl, no signal will ever come: give up now.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
    let spawner = SPAWNER
        .get_or_init(start_spawner)
        .as_ref()
        .ok_or_else(|| io::Error::other("the devkit spawner thread could not be started"))?;
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    spawner
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("the devkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the devkit spawner thread did not answer"))?
}

/// Who receives the stop signals: the child alone, or its whole process group.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    Process,
    Group,
}

fn send(child: &Child, target: Target, sig: Signal, what: &str) -> Result<()> {
    let pid = Pid::from_raw(child.id() as i32);
    let sent = match target {
        Target::Process => signal::kill(pid, sig),
        Target::Group => signal::killpg(pid, sig),
    };
    match sent {
        // Already gone: nothing to stop.
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(DevkitError::Signal {
            what: what.to_string(),
            signal: sig.as_str(),
            source,
        }),
    }
}

/// Waits for `child` to exit until `deadline`; `None` if it is still running then.
pub(crate) fn wait_until(
    child: &mut Child,
    deadline: Instant,
    what: &str,
) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child
            .try_wait()
            .io_context(|| format!("waiting for {what}"))?
        {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `first` and waits up to `grace`; then SIGKILL. Returns how the child ended.
pub(crate) fn stop_child(
    child: &mut Child,
    target: Target,
    first: Signal,
    grace: Duration,
    what: &str,
) -> Result<ExitStatus> {
    if let Some(status) = child
        .try_wait()
        .io_context(|| format!("waiting for {what}"))?
    {
        return Ok(status);
    }
    send(child, target, first, what)?;
    let status = match wait_until(child, Instant::now() + grace, what)? {
        Some(status) => status,
        None => {
            send(child, target, Signal::SIGKILL, what)?;
            child.wait().io_context(|| format!("waiting for {what}"))?
        }
    };
    if let Target::Group = target {
        // The leader is gone; sweep helpers it left behind in its group.
        let _ = send(child, target, Signal::SIGKILL, what);
    }
    Ok(status)
}

//! `ChildProcess` and the parent-death guarantee: children (and the Postgres server) die
//! with the process that started them, even when it is killed with SIGKILL.

mod common;

use std::{
    env,
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use common::{accepts_connections, eventually, process_alive, reachable_tempdir};
use sluice_devkit::{ChildProcess, DevkitError, Output, PgCluster, PgOptions, wait_http_ok};

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

#[test]
fn output_goes_to_the_log_and_an_exit_is_reported_with_it() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("logs/child.log");
    let mut child = ChildProcess::spawn(
        "noisy",
        sh("echo hello; echo oops >&2; exit 3"),
        Output::LogFile(log.clone()),
    )?;
    eventually("the child exits", Duration::from_secs(10), || {
        child.try_wait().ok().flatten().is_some()
    });
    let err = child.ensure_running().expect_err("it exited");
    let DevkitError::ChildExited {
        name,
        status,
        log_tail,
    } = err
    else {
        panic!("unexpected error: {err}");
    };
    assert_eq!(name, "noisy");
    assert_eq!(status.code(), Some(3));
    assert!(
        log_tail.contains("hello") && log_tail.contains("oops"),
        "{log_tail}"
    );
    Ok(())
}

#[test]
fn stop_ends_the_whole_process_group() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("child.log");
    // The shell ignores SIGTERM so that the grace period runs out and SIGKILL is needed;
    // its background `sleep` must die too (same process group).
    let script = "trap '' TERM; sleep 300 & echo $!; wait";
    let mut child = ChildProcess::spawn("stubborn", sh(script), Output::LogFile(log.clone()))?;
    let mut grandchild = 0;
    eventually(
        "the grandchild pid is logged",
        Duration::from_secs(10),
        || {
            grandchild = std::fs::read_to_string(&log)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            grandchild != 0
        },
    );
    let status = child.stop_with_grace(Duration::from_millis(300))?;
    assert!(!status.success());
    eventually("the grandchild is gone", Duration::from_secs(10), || {
        !process_alive(grandchild)
    });
    Ok(())
}

#[test]
fn wait_http_ok_waits_for_200_and_gives_up_when_the_child_exits()
-> Result<(), Box<dyn std::error::Error>> {
    // A server that answers 503 once, then 200.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/readyz", listener.local_addr()?);
    thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request_line);
            let status = if i == 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        }
    });
    wait_http_ok(&url, Duration::from_secs(10))?;

    let free = format!("http://127.0.0.1:{}/readyz", sluice_devkit::free_port()?);
    let mut child = ChildProcess::spawn("quitter", sh("echo bye; exit 1"), Output::Null)?;
    let err = child
        .wait_http_ok(&free, Duration::from_secs(30))
        .expect_err("nobody answers");
    assert!(matches!(err, DevkitError::ChildExited { .. }), "{err}");
    Ok(())
}

/// Environment variable that turns [`helper_holds_children_until_killed`] into the helper.
const HELPER_VAR: &str = "SLUICE_DEVKIT_DEATH_HELPER";

#[test]
fn children_die_with_a_killed_parent() -> Result<(), Box<dyn std::error::Error>> {
    let dir = reachable_tempdir()?;
    let mut helper = Command::new(env::current_exe()?)
        .args([
            "--exact",
            "helper_holds_children_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // If the helper never reports, kill it so that reading its output ends.
    let helper_pid = nix::unistd::Pid::from_raw(helper.id() as i32);
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(120));
        let _ = nix::sys::signal::kill(helper_pid, nix::sys::signal::Signal::SIGKILL);
    });
    let stdout = helper.stdout.take().ok_or("no stdout")?;
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // The harness prints "test <name> ... " on the same line before our output.
        .find_map(|line| line.find("READY ").map(|at| line[at..].to_string()))
        .ok_or("the helper did not report READY")?;
    let mut fields = ready.split_whitespace().skip(1);
    let sleep_pid: u32 = fields.next().ok_or("no pid")?.parse()?;
    let pg_port: u16 = fields.next().ok_or("no port")?.parse()?;
    assert!(process_alive(sleep_pid) && accepts_connections(pg_port));

    helper.kill()?; // SIGKILL: no destructor runs
    helper.wait()?;
    eventually(
        "the child dies with its parent",
        Duration::from_secs(10),
        || !process_alive(sleep_pid),
    );
    eventually(
        "Postgres dies with its parent",
        Duration::from_secs(20),
        || !accepts_connections(pg_port),
    );
    Ok(())
}

/// Not a test on its own: started by [`children_die_with_a_killed_parent`]. It spawns from
/// a short-lived thread on purpose: the children must survive that thread's exit.
#[test]
fn helper_holds_children_until_killed() -> Result<(), Box<dyn std::error::Error>> {
    let Some(dir) = env::var_os(HELPER_VAR) else {
        return Ok(());
    };
    let (child, cluster) = thread::spawn(move || -> Result<_, DevkitError> {
        let child = ChildProcess::spawn("sleeper", sh("exec sleep 300"), Output::Null)?;
        let cluster = PgCluster::start(PgOptions::new(std::path::Path::new(&dir).join("pg")))?;
        Ok((child, cluster))
    })
    .join()
    .map_err(|_| "spawning thread panicked")??;
    // Outlive the spawning thread before reporting, so its exit has had its chance to kill.
    thread::sleep(Duration::from_millis(300));
    assert!(accepts_connections(cluster.port()));
    println!("READY {} {}", child.id(), cluster.port());
    loop {
        thread::park();
    }
}

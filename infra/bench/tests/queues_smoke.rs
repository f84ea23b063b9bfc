//! Keeps `sluice-bench queues` from rotting: a small run against a private
//! deployment must complete and report every phase. It runs the real
//! binaries: `sluice-bench` finds `sluice-control` and `sluice-broker` next
//! to itself, where `make test` builds them (`cargo build --workspace
//! --bins`) before running the tests, and starts its own Postgres.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_small_queues_run_completes_and_reports_every_phase() {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args([
            "queues",
            "--queues",
            "50",
            "--touch",
            "5",
            "--idle-secs",
            "1",
            "--more",
            "10",
            "--concurrency",
            "8",
            "--timeout-secs",
            "300",
        ])
        .output()
        .expect("sluice-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().expect("one JSON line");
    let report: Value = serde_json::from_str(line).expect("the line is JSON");

    assert_eq!(report["mode"], "queues", "{line}");
    assert_eq!(report["complete"], true, "{line}\n{stderr}");
    assert_eq!(report["groups"], 50, "{line}");
    for headline in [
        "idle_cpu_pct_of_core",
        "rss_mb",
        "open_files",
        "threads",
        "rss_bytes_per_queue",
        "open_files_per_queue",
        "declares_per_s",
        "more_declares_per_s",
        "sigterm_restart_ready_s",
        "sigkill_restart_first_publish_s",
    ] {
        assert!(report[headline].is_number(), "{headline} in {line}");
    }
    assert!(report["baseline"]["open_files"].is_u64(), "{line}");
    assert_eq!(report["first_publish_ms"]["count"], 5, "{line}");
    assert_eq!(report["run"]["more"]["declared"], 10, "{line}");
    let restarts = report["run"]["restarts"].as_array().expect("restarts");
    assert_eq!(restarts.len(), 2, "{line}");
    for restart in restarts {
        assert_eq!(restart["published_before_received_after"], true, "{line}");
    }
}

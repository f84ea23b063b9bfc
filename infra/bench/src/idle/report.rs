//! The `queues` mode's one JSON line: the headline (idle cost with the
//! queues declared, per queue, declare rates, first-publish latency,
//! restart times) first, then ratios against the same run's baseline with
//! no queue, the baseline itself, and every phase's details.

use serde::Serialize;
use serde_json::{Value, json};

use super::Run;
use crate::args::QueuesArgs;
use crate::process::Idle;
use crate::report::{number, ratio, round3};
use crate::target::{Stop, Target};

#[derive(Serialize)]
pub struct QueuesReport {
    mode: &'static str,
    target: &'static str,
    tenant: String,
    complete: bool,
    queues: u64,
    streams: u64,
    partitions_per_stream: u64,
    /// Queues and stream partitions present while `idle_*` was measured.
    groups: u64,
    concurrency: u64,
    touch: u64,
    more: u64,
    idle_secs: u64,
    idle_cpu_pct_of_core: Value,
    rss_mb: Value,
    anonymous_mb: Value,
    open_files: Value,
    threads: Value,
    rss_bytes_per_queue: Value,
    anonymous_bytes_per_queue: Value,
    open_files_per_queue: Value,
    declares_per_s: Value,
    declares_first_thousand_per_s: Value,
    declares_last_thousand_per_s: Value,
    more_declares_per_s: Value,
    first_publish_ms: Value,
    receive_ms: Value,
    sigterm_restart_ready_s: Value,
    sigterm_restart_first_publish_s: Value,
    sigkill_restart_ready_s: Value,
    sigkill_restart_first_publish_s: Value,
    ratios: Value,
    baseline: Value,
    run: Value,
}

fn idle_json(idle: &Option<Idle>) -> Value {
    idle.as_ref().map_or(Value::Null, Idle::to_json)
}

/// `(after - before) / groups`, rounded; null without both or any group.
fn per_group(before: Option<u64>, after: Option<u64>, groups: u64) -> Value {
    match (before, after) {
        (Some(before), Some(after)) if groups > 0 => {
            json!(round3((after as f64 - before as f64) / groups as f64))
        }
        _ => Value::Null,
    }
}

pub fn build(args: &QueuesArgs, target: &Target, run: &Run, complete: bool) -> QueuesReport {
    let declared_queues = run.queues.as_ref().map_or(0, |d| d.names.len() as u64);
    let declared_partitions = run
        .streams
        .as_ref()
        .map_or(0, |d| d.names.len() as u64 * args.partitions_per_stream);
    let groups = declared_queues + declared_partitions;
    let baseline = idle_json(&run.baseline);
    let after = idle_json(&run.after_declare);
    let field = |idle: &Option<Idle>, pick: fn(&Idle) -> u64| idle.as_ref().map(pick);
    let rss = |idle: &Idle| idle.end.status.rss_bytes;
    let anonymous = |idle: &Idle| idle.end.status.anonymous_bytes;
    let files = |idle: &Idle| idle.end.open_files;
    let queues_json = run.queues.as_ref().map_or(Value::Null, |d| d.to_json());
    let more_json = run.more.as_ref().map_or(Value::Null, |d| d.to_json());
    let touch_json = run.touched.as_ref().map_or(Value::Null, |t| t.to_json());
    let restart = |stop: Stop| run.restarts.iter().find(|r| r.stop == stop);
    let ready = |stop: Stop| restart(stop).map_or(Value::Null, |r| r.ready_s());
    let first_publish = |stop: Stop| restart(stop).map_or(Value::Null, |r| r.first_publish_s());
    let ratio_of = |a: &Value, b: &Value, path: &[&str]| ratio(number(a, path), number(b, path));
    // The baseline's idle CPU is often 0 (no tick in the window), which no
    // ratio survives: the CPU the queues added is given per thousand too.
    let cpu = |idle: &Option<Idle>| idle.as_ref().map(|i| i.cpu_percent_of_core);
    let cpu_per_thousand = match (cpu(&run.baseline), cpu(&run.after_declare)) {
        (Some(before), Some(after)) if groups > 0 => {
            json!(round3((after - before) * 1000.0 / groups as f64))
        }
        _ => Value::Null,
    };
    let ratios = json!({
        "cpu_pct_added_per_thousand_queues": cpu_per_thousand,
        "cpu_after_declare_per_baseline": ratio_of(&after, &baseline, &["cpu_pct_of_core"]),
        "rss_after_declare_per_baseline": ratio_of(&after, &baseline, &["rss_mb"]),
        "anonymous_after_declare_per_baseline": ratio_of(&after, &baseline, &["anonymous_mb"]),
        "open_files_after_declare_per_baseline": ratio_of(&after, &baseline, &["open_files"]),
        "threads_after_declare_per_baseline": ratio_of(&after, &baseline, &["threads"]),
        "rss_after_touch_per_after_declare":
            ratio_of(&idle_json(&run.after_touch), &after, &["rss_mb"]),
        "declares_last_thousand_per_first_thousand": ratio(
            number(&queues_json, &["last_thousand_per_s"]),
            number(&queues_json, &["first_thousand_per_s"]),
        ),
        "more_declares_per_first_thousand": ratio(
            number(&more_json, &["per_s"]),
            number(&queues_json, &["first_thousand_per_s"]),
        ),
        "feed_snapshot_bytes_per_queue": per_group(
            run.feed_empty.as_ref().and_then(|f| f["bytes"].as_u64()),
            run.feed_full.as_ref().and_then(|f| f["bytes"].as_u64()),
            groups,
        ),
        // What a broker following the feed reads per declare, with all the
        // queues against with none: 1 when it does not grow with them.
        "feed_change_bytes_full_per_empty": ratio(
            number(run.feed_full.as_ref().unwrap_or(&Value::Null), &["last_change", "bytes"]),
            number(run.feed_empty.as_ref().unwrap_or(&Value::Null), &["last_change", "bytes"]),
        ),
        "first_publish_p50_per_second_publish_p50": ratio(
            number(&touch_json, &["first_publish_ms", "p50"]),
            number(&touch_json, &["second_publish_ms", "p50"]),
        ),
    });
    let run_json = json!({
        "idle": {
            "after_declare": after,
            "after_touch": idle_json(&run.after_touch),
            "after_restarts": idle_json(&run.after_restart),
        },
        "declare": queues_json,
        "declare_streams": run.streams.as_ref().map(|d| d.to_json()),
        "declare_cpu_pct_of_core": run.declare_cpu.as_ref().map(|cpu| json!({
            "broker": round3(cpu.broker),
            "control_plane": round3(cpu.control),
        })),
        "feed_snapshot": {
            "no_queue": run.feed_empty,
            "queues_declared": run.feed_full,
        },
        "applied": run.applied.as_ref().map(|applied| json!({
            "topology_version": applied.version,
            "after_last_declare_s": round3(applied.after.as_secs_f64()),
        })),
        "touch": touch_json,
        "restarts": run.restarts.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        "more": more_json,
        "timed_out": run.timed_out,
        "errors": run.errors,
    });
    QueuesReport {
        mode: "queues",
        target: target.kind,
        tenant: target.tenant.clone(),
        complete,
        queues: args.queues,
        streams: args.streams,
        partitions_per_stream: args.partitions_per_stream,
        groups,
        concurrency: args.concurrency,
        touch: args.touch,
        more: args.more,
        idle_secs: args.idle_secs,
        idle_cpu_pct_of_core: after["cpu_pct_of_core"].clone(),
        rss_mb: after["rss_mb"].clone(),
        anonymous_mb: after["anonymous_mb"].clone(),
        open_files: after["open_files"].clone(),
        threads: after["threads"].clone(),
        rss_bytes_per_queue: per_group(
            field(&run.baseline, rss),
            field(&run.after_declare, rss),
            groups,
        ),
        anonymous_bytes_per_queue: per_group(
            field(&run.baseline, anonymous),
            field(&run.after_declare, anonymous),
            groups,
        ),
        open_files_per_queue: per_group(
            field(&run.baseline, files),
            field(&run.after_declare, files),
            groups,
        ),
        declares_per_s: run
            .queues
            .as_ref()
            .map_or(Value::Null, |d| json!(d.per_s())),
        declares_first_thousand_per_s: run_json["declare"]["first_thousand_per_s"].clone(),
        declares_last_thousand_per_s: run_json["declare"]["last_thousand_per_s"].clone(),
        more_declares_per_s: run.more.as_ref().map_or(Value::Null, |d| json!(d.per_s())),
        first_publish_ms: run_json["touch"]["first_publish_ms"].clone(),
        receive_ms: run_json["touch"]["receive_ms"].clone(),
        sigterm_restart_ready_s: ready(Stop::Graceful),
        sigterm_restart_first_publish_s: first_publish(Stop::Graceful),
        sigkill_restart_ready_s: ready(Stop::Kill),
        sigkill_restart_first_publish_s: first_publish(Stop::Kill),
        ratios,
        baseline,
        run: run_json,
    }
}

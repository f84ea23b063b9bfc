//! `sluice-bench`: a bounded load generator for Sluice's HTTP data API that
//! prints one JSON line per run, with a same-run baseline so the figures can
//! be read as ratios rather than absolute numbers from a shared machine.

mod args;
mod baseline;
mod deep;
mod engine;
mod idle;
mod process;
mod push;
mod queue;
mod report;
mod stream;
mod target;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use serde_json::Value;

use crate::args::{Cli, Mode, QueueArgs};
use crate::report::{number, ratio, take};
use crate::target::{Resource, Target};

/// The printed line; a struct so the headline fields come first.
#[derive(Serialize)]
struct QueueReport {
    mode: &'static str,
    target: &'static str,
    tenant: String,
    queue: String,
    complete: bool,
    messages: u64,
    size: u64,
    publishers: u64,
    batch: u64,
    window: u64,
    consumers: u64,
    max_messages: u64,
    consume_mode: &'static str,
    rate: u64,
    msgs_per_s: Value,
    mb_per_s: Value,
    publish_msgs_per_s: Value,
    e2e_latency_ms: Value,
    publish_latency_ms: Value,
    ratios: Value,
    baseline: Value,
    run: Value,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sluice-bench: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.mode {
            Mode::Queue(args) => queue_mode(Arc::new(args)).await,
            Mode::Stream(args) => stream::mode(Arc::new(args)).await,
            Mode::Queues(args) => idle::mode(Arc::new(args)).await,
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("sluice-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prepares the target, measures the baselines, runs the scenario and prints
/// the report; `Ok(false)` when the run did not complete.
async fn queue_mode(args: Arc<QueueArgs>) -> anyhow::Result<bool> {
    args.validate()?;
    eprintln!("sluice-bench: preparing the target");
    let mut target = Target::prepare(&args.target, Resource::Queue, args.queue.as_deref()).await?;
    let mut baseline = serde_json::Map::new();
    if args.baseline_secs > 0 {
        eprintln!("sluice-bench: baselines ({} s each)", args.baseline_secs);
        baseline = baseline::http_and_disk(
            &target.broker_url,
            args.publishers as usize,
            (args.publishers * args.window) as usize,
            target.baseline_dir(args.fsync_dir.as_deref()),
            (args.batch * args.size) as usize,
            Duration::from_secs(args.baseline_secs),
        )
        .await?;
    }
    eprintln!(
        "sluice-bench: {} messages of {} B on queue {} ({} consumers)",
        args.messages,
        args.size,
        target.name,
        args.consume_mode()
    );
    let mut run = queue::run(&mut target, args.clone()).await?;
    target.cleanup().await;

    let baseline = Value::Object(baseline);
    let healthz_rps = number(&baseline, &["healthz", "requests_per_s"]);
    let fsyncs = number(&baseline, &["fsync", "fsyncs_per_s"]);
    let fsync_mb = number(&baseline, &["fsync", "mb_per_s"]);
    let ratios = serde_json::json!({
        "publish_requests_per_healthz": ratio(number(&run, &["publish_requests_per_s"]), healthz_rps),
        "msgs_per_healthz": ratio(number(&run, &["msgs_per_s"]), healthz_rps),
        "publish_requests_per_fsync": ratio(number(&run, &["publish_requests_per_s"]), fsyncs),
        "publish_mb_per_fsync_mb": ratio(number(&run, &["publish_mb_per_s"]), fsync_mb),
        "publish_p50_per_healthz_p50": ratio(
            number(&run, &["publish_latency_ms", "p50"]),
            number(&baseline, &["healthz", "latency_ms", "p50"]),
        ),
    });
    let complete = run["complete"].as_bool().unwrap_or(false);
    let report = QueueReport {
        mode: "queue",
        target: target.kind,
        tenant: target.tenant.clone(),
        queue: target.name.clone(),
        complete,
        messages: args.messages,
        size: args.size,
        publishers: args.publishers,
        batch: args.batch,
        window: args.window,
        consumers: args.consumers,
        max_messages: args.max_messages,
        consume_mode: args.consume_mode(),
        rate: args.rate,
        msgs_per_s: take(&mut run, "msgs_per_s"),
        mb_per_s: take(&mut run, "mb_per_s"),
        publish_msgs_per_s: take(&mut run, "publish_msgs_per_s"),
        e2e_latency_ms: take(&mut run, "e2e_latency_ms"),
        publish_latency_ms: take(&mut run, "publish_latency_ms"),
        ratios,
        baseline,
        run,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(complete)
}

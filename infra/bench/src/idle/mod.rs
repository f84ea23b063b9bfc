//! The `queues` mode (issue 23): what many idle queues cost one broker.
//!
//! In one run, against a fresh tenant whose count quotas fit: the broker's
//! idle CPU, memory, open files and threads with no queue (the baseline);
//! `--queues` (and `--streams`) declared through the control plane, with the
//! declare rate per thousand; the same idle figures once the broker applied
//! them, and per queue; a random few queues woken (first publish, receive);
//! idle again; a graceful and a kill -9 restart (time to ready and to a
//! first confirmed publish, nothing lost); `--more` declares with everything
//! present. Each phase records what it saw, so a run cut short by
//! `--timeout-secs` or a failing broker still reports how far it got.

mod declare;
mod feed;
mod probe;
mod rates;
mod report;
mod restart;
mod touch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::seq::IndexedRandom;
use sluice_client::Client;

use crate::args::QueuesArgs;
use crate::process::{self, Idle, Sample};
use crate::target::{Resource, Stop, Target};

use declare::{Declared, Kind};
use restart::Restart;
use touch::Touched;

/// How often the topology status is asked while waiting for the broker.
const STATUS_POLL: Duration = Duration::from_millis(100);
/// Waiting for the broker to apply the topology gives up when its applied
/// version has not moved for this long (it may be slow, not stuck).
const APPLY_STALL: Duration = Duration::from_secs(120);
/// The most a restarted broker gets to be ready (within `--timeout-secs`).
const READY_WITHIN: Duration = Duration::from_secs(600);

/// What the phases saw; `None` for a phase that did not run.
#[derive(Default)]
pub struct Run {
    baseline: Option<Idle>,
    queues: Option<Declared>,
    streams: Option<Declared>,
    /// CPU of the broker and of the control plane while declaring.
    declare_cpu: Option<DeclareCpu>,
    applied: Option<Applied>,
    after_declare: Option<Idle>,
    touched: Option<Touched>,
    after_touch: Option<Idle>,
    restarts: Vec<Restart>,
    after_restart: Option<Idle>,
    more: Option<Declared>,
    /// Feed snapshots with no queue, and with the queues declared.
    feed_empty: Option<serde_json::Value>,
    feed_full: Option<serde_json::Value>,
    errors: Vec<String>,
    timed_out: bool,
}

/// The broker applying every declared queue.
pub struct Applied {
    /// The topology version the last declare made.
    version: i64,
    /// From the end of the declares until the broker reported it applied.
    after: Duration,
}

/// CPU use (% of one core) over the declare phase.
pub struct DeclareCpu {
    broker: f64,
    control: f64,
}

/// `idle-000042`: the names sort in declare order.
fn queue_name(index: u64) -> String {
    format!("idle-{index:06}")
}

/// Runs the mode and prints its report; `Ok(false)` when incomplete.
pub async fn mode(args: Arc<QueuesArgs>) -> anyhow::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    eprintln!("sluice-bench: preparing the target");
    let resource = Resource::Many {
        queues: args.queues + args.more,
        streams: args.streams,
        partitions: args.streams * args.partitions_per_stream,
    };
    let mut target = Target::prepare(&args.target, resource, None).await?;
    let mut run = Run::default();
    if let Err(error) = phases(&mut run, &mut target, &args, deadline).await {
        run.errors.push(format!("{error:#}"));
    }
    // A broker that died is the finding of the run: say how it ended.
    if let Some(spawned) = target.spawned.as_mut()
        && let Err(error) = spawned.broker_running()
    {
        let error = format!("{error:#}");
        if !run.errors.contains(&error) {
            run.errors.push(error);
        }
    }
    target.cleanup().await;
    let complete = run.complete(&args, target.spawned.is_some());
    let report = report::build(&args, &target, &run, complete);
    println!("{}", serde_json::to_string(&report)?);
    Ok(complete)
}

impl Run {
    /// Every phase that could run here did, and did all it should.
    fn complete(&self, args: &QueuesArgs, spawned: bool) -> bool {
        let declared = |phase: &Option<Declared>, wanted: u64| {
            wanted == 0 || phase.as_ref().is_some_and(Declared::complete)
        };
        let restarts_done = !spawned
            || args.no_restart
            || (self.restarts.len() == 2 && self.restarts.iter().all(|r| r.ok));
        self.errors.is_empty()
            && !self.timed_out
            && declared(&self.queues, args.queues)
            && declared(&self.streams, args.streams)
            && self.applied.is_some()
            && self.touched.as_ref().is_some_and(Touched::complete)
            && restarts_done
            && declared(&self.more, args.more)
    }

    /// The idle figures of the broker, when it is ours to read; an error
    /// is recorded and the run goes on without them.
    async fn idle(&mut self, target: &Target, window: Duration, what: &str) -> Option<Idle> {
        let pid = target.broker_pid()?;
        eprintln!("sluice-bench: idle {what} ({} s)", window.as_secs());
        match process::measure_idle(pid, window).await {
            Ok(idle) => Some(idle),
            Err(error) => {
                self.errors.push(format!("idle {what}: {error:#}"));
                None
            }
        }
    }
}

/// Ends the phase sequence once the run's time is up.
fn check_time(run: &mut Run, deadline: Instant, next: &str) -> anyhow::Result<()> {
    if Instant::now() >= deadline {
        run.timed_out = true;
        anyhow::bail!("--timeout-secs reached before {next}");
    }
    Ok(())
}

async fn phases(
    run: &mut Run,
    target: &mut Target,
    args: &QueuesArgs,
    deadline: Instant,
) -> anyhow::Result<()> {
    let window = Duration::from_secs(args.idle_secs);
    run.baseline = run.idle(target, window, "with no queue").await;
    run.feed_empty = feed_snapshot(target).await;

    check_time(run, deadline, "declaring")?;
    eprintln!(
        "sluice-bench: declaring {} queues ({} at a time)",
        args.queues, args.concurrency
    );
    let busy_from = cpu_samples(target);
    let names: Vec<String> = (0..args.queues).map(queue_name).collect();
    let queues = declare::declare_all(
        &target.control_url,
        &target.admin_key,
        names,
        Kind::Queue,
        args.concurrency as usize,
        deadline,
    )
    .await?;
    if args.streams > 0 {
        eprintln!(
            "sluice-bench: declaring {} streams of {} partitions",
            args.streams, args.partitions_per_stream
        );
        let names = (0..args.streams)
            .map(|i| format!("idle-stream-{i:05}"))
            .collect();
        let partitions = u32::try_from(args.partitions_per_stream).unwrap_or(u32::MAX);
        run.streams = Some(
            declare::declare_all(
                &target.control_url,
                &target.admin_key,
                names,
                Kind::Stream { partitions },
                args.concurrency as usize,
                deadline,
            )
            .await?,
        );
    }
    run.declare_cpu = declare_cpu(busy_from, cpu_samples(target));
    let declared_queues = queues.names.clone();
    run.queues = Some(queues);
    if declared_queues.is_empty() {
        anyhow::bail!("no queue could be declared");
    }

    let declared_at = Instant::now();
    run.applied = Some(wait_applied(target, deadline, declared_at).await?);
    run.after_declare = run.idle(target, window, "with the queues declared").await;
    run.feed_full = feed_snapshot(target).await;

    check_time(run, deadline, "touching queues")?;
    let (touch, survivors) = pick(&declared_queues, args.touch as usize);
    eprintln!("sluice-bench: touching {} queues", touch.len());
    run.touched = Some(touch::touch(&target.data_client(), &touch, deadline).await);
    run.after_touch = run.idle(target, window, "after touching").await;

    if target.spawned.is_some() && !args.no_restart {
        if survivors.len() < 4 {
            anyhow::bail!("the restarts need at least 4 queues (--queues)");
        }
        for (stop, queues) in [Stop::Graceful, Stop::Kill]
            .into_iter()
            .zip(survivors.chunks(2))
        {
            check_time(run, deadline, "restarting the broker")?;
            let [survivor, first] = queues else {
                anyhow::bail!("the restarts need at least 4 queues (--queues)");
            };
            eprintln!("sluice-bench: restarting the broker ({})", stop.name());
            let ready_within = READY_WITHIN.min(deadline.saturating_duration_since(Instant::now()));
            let restart =
                restart::restart(target, stop, survivor, first, ready_within, deadline).await;
            run.restarts.push(restart);
        }
        run.after_restart = run.idle(target, window, "after the restarts").await;
    }

    if args.more > 0 {
        check_time(run, deadline, "declaring more")?;
        eprintln!(
            "sluice-bench: declaring {} more queues with {} present",
            args.more,
            declared_queues.len()
        );
        let names = (args.queues..args.queues + args.more)
            .map(queue_name)
            .collect();
        run.more = Some(
            declare::declare_all(
                &target.control_url,
                &target.admin_key,
                names,
                Kind::Queue,
                args.concurrency as usize,
                deadline,
            )
            .await?,
        );
    }
    Ok(())
}

/// 4 random queues for the restarts (graceful and kill -9 each need one
/// holding a message across it and one for the first publish after it)
/// and `touch` other distinct random queues to wake; fewer when there are
/// not that many.
fn pick(names: &[String], touch: usize) -> (Vec<String>, Vec<String>) {
    let spare = 4.min(names.len());
    let touch = touch.min(names.len() - spare);
    let mut chosen: Vec<String> = names
        .choose_multiple(&mut rand::rng(), spare + touch)
        .cloned()
        .collect();
    let touched = chosen.split_off(spare);
    (touched, chosen)
}

/// A feed snapshot's size and time, when the node key is ours.
async fn feed_snapshot(target: &Target) -> Option<serde_json::Value> {
    let node_key = target.spawned.as_ref()?.node_key();
    Some(feed::snapshot(&target.control_url, node_key).await)
}

/// Broker and control-plane CPU counters, when both are ours.
fn cpu_samples(target: &Target) -> Option<(Sample, Sample)> {
    let spawned = target.spawned.as_ref()?;
    let broker = process::sample(spawned.broker_pid()).ok()?;
    let control = process::sample(spawned.control_pid()).ok()?;
    Some((broker, control))
}

fn declare_cpu(from: Option<(Sample, Sample)>, to: Option<(Sample, Sample)>) -> Option<DeclareCpu> {
    let ((broker_from, control_from), (broker_to, control_to)) = (from?, to?);
    Some(DeclareCpu {
        broker: process::cpu_percent(&broker_from, &broker_to),
        control: process::cpu_percent(&control_from, &control_to),
    })
}

/// Waits until every live broker applied the latest topology version
/// (`GET /v1/topology/status`): declares that answered 202 were stored but
/// not yet applied. Gives up at `deadline`, when the applied version stalls
/// for [`APPLY_STALL`], or when a broker started here exited.
async fn wait_applied(
    target: &mut Target,
    deadline: Instant,
    since: Instant,
) -> anyhow::Result<Applied> {
    let control = Client::new(&target.control_url).with_bearer(&target.admin_key);
    eprintln!("sluice-bench: waiting for the broker to apply the topology");
    let mut progress = (None, Instant::now());
    loop {
        let status = control
            .topology_status()
            .await
            .context("GET /v1/topology/status")?;
        if status.applied_version.is_some_and(|v| v >= status.version) {
            return Ok(Applied {
                version: status.version,
                after: since.elapsed(),
            });
        }
        if let Some(spawned) = target.spawned.as_mut() {
            spawned.broker_running()?;
        }
        if status.applied_version != progress.0 {
            progress = (status.applied_version, Instant::now());
        }
        let stalled = progress.1.elapsed() >= APPLY_STALL;
        if Instant::now() >= deadline || stalled {
            anyhow::bail!(
                "{} with topology version {} applied up to {:?} ({} live brokers)",
                if stalled {
                    "the applied version stalled"
                } else {
                    "--timeout-secs reached"
                },
                status.version,
                status.applied_version,
                status.live_nodes
            );
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

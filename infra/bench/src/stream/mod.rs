//! The stream mode: declare a stream with `--partitions` partitions,
//! produce `--records` records with acks (`produce`), fetch every partition
//! back and check each acked record came back exactly once (`fetch`,
//! `verify`), and divide the produce figures by the storage engine's raw
//! append rate measured in the same run (`crate::engine`) — plus the
//! `/healthz` and fdatasync baselines the queue mode uses.

mod fetch;
mod payload;
mod produce;
mod verify;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sluice_client::Client;
use sluice_client::data::FetchRequest;

use crate::args::StreamArgs;
use crate::engine::{self, EngineLoad};
use crate::report::{number, per_s, ratio, round3};
use crate::target::{Resource, Target};
use verify::Verifier;

/// No single produce or fetch should take longer (a fetch adds its `wait_ms`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new stream's partitions may take to be served.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Kept in the report at most, so a failing run stays one readable line.
const MAX_ERRORS: usize = 5;

/// What every produce and fetch task of one run shares.
pub struct Run {
    args: Arc<StreamArgs>,
    /// The broker, with the run's key; each task takes it with a pool of its own.
    client: Client,
    stream: String,
    tag: String,
    epoch: Instant,
    /// When producers stop claiming records.
    produce_deadline: Instant,
    /// Every producer has finished.
    produced: AtomicBool,
    /// When fetchers give up, in microseconds from `epoch`: `--timeout-secs`
    /// after the producers finished (unbounded until then).
    fetch_deadline_micros: AtomicU64,
    verifier: Mutex<Verifier>,
    errors: Mutex<Vec<String>>,
}

impl Run {
    fn error(&self, message: String) {
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < MAX_ERRORS
        {
            errors.push(message);
        }
    }

    /// Microseconds from the run's start to `at`.
    fn micros(&self, at: Instant) -> u64 {
        at.duration_since(self.epoch).as_micros() as u64
    }

    /// Every producer has finished: fetchers may stop at the high watermark
    /// and have `--timeout-secs` from now.
    fn producers_done(&self) {
        let limit = self.micros(Instant::now()) + self.args.timeout_secs * 1_000_000;
        self.fetch_deadline_micros.store(limit, Ordering::Release);
        self.produced.store(true, Ordering::Release);
    }

    fn fetch_deadline_passed(&self) -> bool {
        self.micros(Instant::now()) >= self.fetch_deadline_micros.load(Ordering::Acquire)
    }

    fn fetchers(&self) -> u32 {
        self.args.fetchers.unwrap_or(self.args.partitions) as u32
    }
}

/// The printed line; a struct so the headline fields come first.
#[derive(Serialize)]
struct StreamReport {
    mode: &'static str,
    target: &'static str,
    tenant: String,
    stream: String,
    complete: bool,
    verified: bool,
    records: u64,
    size: u64,
    partitions: u64,
    producers: u64,
    batch: u64,
    window: u64,
    fetchers: u32,
    keys: u64,
    fetch_format: &'static str,
    follow: bool,
    produce_records_per_s: f64,
    produce_mb_per_s: f64,
    produce_latency_ms: Value,
    fetch_records_per_s: f64,
    fetch_mb_per_s: f64,
    e2e_latency_ms: Value,
    engine_records_per_s: Value,
    engine_mb_per_s: Value,
    ratios: Value,
    baseline: Value,
    run: Value,
}

/// A new stream's partitions are opened (and elect their leader) after the
/// declare: wait until each answers a fetch.
async fn wait_ready(target: &Target, partitions: u64) -> anyhow::Result<()> {
    let client = target.data_client();
    let deadline = Instant::now() + READY_TIMEOUT;
    let first = FetchRequest {
        max_records: Some(1),
        ..FetchRequest::default()
    };
    for p in 0..partitions {
        loop {
            let error = match client.fetch(&target.name, p as u32, &first).await {
                Ok(_) => break,
                Err(error) => error,
            };
            if Instant::now() > deadline {
                bail!("partition {p} is not served within {READY_TIMEOUT:?}: {error}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Prepares the target, measures the baselines, runs the scenario and prints
/// the report; `Ok(false)` when the run did not complete.
pub async fn mode(args: Arc<StreamArgs>) -> anyhow::Result<bool> {
    if args.fetchers.is_some_and(|f| f > args.partitions) {
        bail!(
            "--fetchers {} is more than --partitions {}",
            args.fetchers.unwrap_or_default(),
            args.partitions
        );
    }
    eprintln!("sluice-bench: preparing the target");
    let resource = Resource::Stream {
        partitions: args.partitions,
    };
    let target = Target::prepare(&args.target, resource, args.stream.as_deref()).await?;
    wait_ready(&target, args.partitions).await?;
    let dir = target.baseline_dir(args.baseline_dir.as_deref());
    let mut baseline = Map::new();
    if args.baseline_secs > 0 {
        eprintln!("sluice-bench: baselines ({} s each)", args.baseline_secs);
        baseline = crate::baseline::http_and_disk(
            &target.broker_url,
            args.producers as usize,
            (args.producers * args.window) as usize,
            dir.clone(),
            (args.batch * args.size) as usize,
            Duration::from_secs(args.baseline_secs),
        )
        .await?;
    }
    if args.engine_secs > 0 {
        eprintln!(
            "sluice-bench: storage engine baseline ({} records and {} s at least)",
            args.records, args.engine_secs
        );
        let load = EngineLoad {
            logs: args.partitions,
            appenders: args.producers * args.window,
            records: args.records,
            batch: args.batch,
            size: args.size,
            keyed: args.keys > 0,
        };
        let figure = engine::append(
            &dir,
            load,
            Duration::from_secs(args.engine_secs),
            Duration::from_secs(args.timeout_secs.max(args.engine_secs)),
        )
        .await?;
        baseline.insert("engine".into(), figure);
    }

    eprintln!(
        "sluice-bench: {} records of {} B on stream {} ({} partitions)",
        args.records, args.size, target.name, args.partitions
    );
    let epoch = Instant::now();
    let run = Arc::new(Run {
        args: args.clone(),
        client: target.data_client(),
        stream: target.name.clone(),
        tag: payload::tag(),
        epoch,
        produce_deadline: epoch + Duration::from_secs(args.timeout_secs),
        produced: AtomicBool::new(false),
        fetch_deadline_micros: AtomicU64::new(u64::MAX),
        verifier: Mutex::new(Verifier::new(args.records, args.partitions as u32)),
        errors: Mutex::new(Vec::new()),
    });
    let (produce, fetch, fetch_elapsed_s) = if args.follow {
        let fetching = tokio::spawn(fetch::run(run.clone()));
        let produce = produce::run(run.clone()).await?;
        run.producers_done();
        let fetch = fetching.await??;
        let elapsed = fetch.last_record_s;
        (produce, fetch, elapsed)
    } else {
        let produce = produce::run(run.clone()).await?;
        run.producers_done();
        eprintln!("sluice-bench: fetching back");
        let started = Instant::now();
        let fetch = fetch::run(run.clone()).await?;
        (produce, fetch, started.elapsed().as_secs_f64())
    };
    target.cleanup().await;
    if produce.acked + produce.failed < args.records {
        run.error(format!(
            "produce: the time limit passed after {} of {} records",
            produce.acked + produce.failed,
            args.records
        ));
    }

    let verification = match run.verifier.lock() {
        Ok(verifier) => verifier.summary(),
        Err(_) => bail!("the verifier's lock is poisoned"),
    };
    let errors = run.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let complete = produce.acked == args.records && produce.failed == 0 && verification.ok;
    let size = args.size as f64;
    let produce_rps = per_s(produce.acked as f64, produce.elapsed_s);
    let produce_mb = per_s(produce.acked as f64 * size / 1e6, produce.elapsed_s);
    let produce_requests = per_s(produce.requests as f64, produce.elapsed_s);
    let fetch_rps = per_s(fetch.records as f64, fetch_elapsed_s);
    let fetch_mb = per_s(fetch.value_bytes as f64 / 1e6, fetch_elapsed_s);
    let fetch_requests = per_s(fetch.requests as f64, fetch_elapsed_s);
    let produce_latency = produce.latencies.to_json();
    let baseline = Value::Object(baseline);
    let healthz_rps = number(&baseline, &["healthz", "requests_per_s"]);
    let ratios = json!({
        "produce_records_per_engine": ratio(produce_rps, number(&baseline, &["engine", "records_per_s"])),
        "produce_mb_per_engine_mb": ratio(produce_mb, number(&baseline, &["engine", "mb_per_s"])),
        "produce_p99_per_engine_append_p99": ratio(
            number(&produce_latency, &["p99"]),
            number(&baseline, &["engine", "append_latency_ms", "p99"]),
        ),
        "produce_requests_per_healthz": ratio(produce_requests, healthz_rps),
        "produce_p50_per_healthz_p50": ratio(
            number(&produce_latency, &["p50"]),
            number(&baseline, &["healthz", "latency_ms", "p50"]),
        ),
        "produce_requests_per_fsync": ratio(produce_requests, number(&baseline, &["fsync", "fsyncs_per_s"])),
        "fetch_requests_per_healthz": ratio(fetch_requests, healthz_rps),
    });
    let partitions: Vec<Value> = verification
        .partitions
        .iter()
        .zip(&fetch.cursors)
        .map(|(counts, cursor)| {
            json!({
                "partition": counts.partition,
                "acked": counts.acked,
                "fetched": counts.fetched,
                "high_watermark": cursor.high_watermark,
            })
        })
        .collect();
    let run_json = json!({
        "produced": produce.acked,
        "produce_failed": produce.failed,
        "produce_requests": produce.requests,
        "produce_elapsed_s": round3(produce.elapsed_s),
        "produce_requests_per_s": produce_requests,
        "fetched": fetch.records,
        "fetch_requests": fetch.requests,
        "fetch_elapsed_s": round3(fetch_elapsed_s),
        "fetch_requests_per_s": fetch_requests,
        "fetch_wire_mb_per_s": per_s(fetch.wire_bytes as f64 / 1e6, fetch_elapsed_s),
        "fetch_latency_ms": fetch.request_latencies.to_json(),
        "verification": {
            "ok": verification.ok,
            "acked": verification.acked,
            "fetched": verification.fetched,
            "missing": verification.missing,
            "duplicates": verification.duplicates,
            "unacked": verification.unacked,
            "misplaced": verification.misplaced,
            "foreign": verification.foreign,
            "bad_acks": verification.bad_acks,
        },
        "partitions": partitions,
        "errors": errors,
    });
    let report = StreamReport {
        mode: "stream",
        target: target.kind,
        tenant: target.tenant.clone(),
        stream: target.name.clone(),
        complete,
        verified: verification.ok,
        records: args.records,
        size: args.size,
        partitions: args.partitions,
        producers: args.producers,
        batch: args.batch,
        window: args.window,
        fetchers: run.fetchers(),
        keys: args.keys,
        fetch_format: args.fetch_format.name(),
        follow: args.follow,
        produce_records_per_s: produce_rps,
        produce_mb_per_s: produce_mb,
        produce_latency_ms: produce_latency,
        fetch_records_per_s: fetch_rps,
        fetch_mb_per_s: fetch_mb,
        e2e_latency_ms: fetch.e2e.to_json(),
        engine_records_per_s: baseline["engine"]["records_per_s"].clone(),
        engine_mb_per_s: baseline["engine"]["mb_per_s"].clone(),
        ratios,
        baseline,
        run: run_json,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(complete)
}

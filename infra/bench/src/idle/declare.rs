//! Declaring many queues or streams through the control plane, `concurrency`
//! declares in flight, each on its own client: how fast declares answer,
//! how many were applied by the brokers in time (201) or not (202), and
//! what failed, by status and problem type.
//!
//! A declare that failed with 429, 503 or no answer is sent again (at most
//! [`ATTEMPTS`] times; declares are idempotent), every failure counted, so a
//! struggling control plane shows in `errors` without losing the queue.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sluice_client::control::{QueueSpec, StreamSpec};
use sluice_client::{Client, ClientError, RetryPolicy, StatusCode};

use super::rates;
use crate::report::{Latencies, per_s, round3};

/// Sends of one declare at most.
const ATTEMPTS: u32 = 3;
/// A declare waits for the brokers up to the control plane's `apply_wait_ms`
/// (5 s by default); this bounds one that never answers.
const DECLARE_TIMEOUT: Duration = Duration::from_secs(120);
/// Kept in the report at most.
const MAX_ERROR_SAMPLES: usize = 5;

/// What is declared.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Queue,
    Stream { partitions: u32 },
}

/// The outcome of one declare phase.
pub struct Declared {
    /// The names that exist now (declared, or found unchanged).
    pub names: Vec<String>,
    pub requested: usize,
    pub created: u64,
    pub accepted: u64,
    pub unchanged: u64,
    /// Names that failed every attempt (or were not sent by the deadline).
    pub failed: u64,
    /// Failed attempts by `"<status> <problem slug>"`.
    pub errors: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
    pub elapsed: Duration,
    /// Offsets from the start at which each successful declare answered.
    completions: Vec<Duration>,
    latencies: Latencies,
}

impl Declared {
    pub fn complete(&self) -> bool {
        self.names.len() == self.requested
    }

    pub fn per_s(&self) -> f64 {
        per_s(self.names.len() as f64, self.elapsed.as_secs_f64())
    }

    pub fn to_json(&self) -> Value {
        let windows = rates::per_window(&self.completions, rates::WINDOW);
        json!({
            "requested": self.requested,
            "declared": self.names.len(),
            "per_s": self.per_s(),
            "elapsed_s": round3(self.elapsed.as_secs_f64()),
            "first_thousand_per_s": windows.first().copied().flatten(),
            "last_thousand_per_s": windows.last().copied().flatten(),
            "per_thousand_per_s": windows,
            "created_201": self.created,
            "accepted_202": self.accepted,
            "unchanged_200": self.unchanged,
            "failed": self.failed,
            "latency_ms": self.latencies.to_json(),
            "errors": self.errors,
            "error_samples": self.error_samples,
        })
    }
}

/// What every declaring task shares.
struct Shared {
    names: Vec<String>,
    next: AtomicUsize,
    start: Instant,
    deadline: Instant,
    errors: Mutex<(BTreeMap<String, u64>, Vec<String>)>,
}

impl Shared {
    fn failed_attempt(&self, error: &ClientError) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.0.entry(error_key(error)).or_default() += 1;
            if errors.1.len() < MAX_ERROR_SAMPLES {
                errors.1.push(error.to_string());
            }
        }
    }
}

/// `"<status> <slug>"` of a failed call, `"transport"` without an answer.
fn error_key(error: &ClientError) -> String {
    match (error.status(), error.problem()) {
        (Some(status), Some(problem)) => format!(
            "{} {}",
            status.as_u16(),
            problem.slug().unwrap_or(&problem.problem_type)
        ),
        (Some(status), None) => status.as_u16().to_string(),
        (None, _) => "transport".to_string(),
    }
}

/// Whether sending the same declare again may succeed.
fn worth_retrying(error: &ClientError) -> bool {
    // The control plane refusing for want of room is the answer being
    // measured (placement against capacity), not a hiccup to wait out.
    if error.is(sluice_client::slug::CAPACITY_EXHAUSTED) {
        return false;
    }
    match error.status() {
        Some(status) => {
            status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
        }
        None => matches!(error, ClientError::Transport { .. }),
    }
}

/// What one task saw.
struct TaskTally {
    names: Vec<String>,
    completions: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    failed: u64,
    latencies: Latencies,
}

async fn declare_loop(shared: Arc<Shared>, admin: Client, kind: Kind) -> TaskTally {
    let mut tally = TaskTally {
        names: Vec::new(),
        completions: Vec::new(),
        statuses: BTreeMap::new(),
        failed: 0,
        latencies: Latencies::new(),
    };
    loop {
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(name) = shared.names.get(index) else {
            return tally;
        };
        if Instant::now() >= shared.deadline {
            tally.failed += 1;
            continue;
        }
        let mut declared = None;
        for _ in 0..ATTEMPTS {
            let sent = Instant::now();
            let status = match kind {
                Kind::Queue => admin
                    .declare_queue(name, &QueueSpec::default())
                    .await
                    .map(|change| change.status),
                Kind::Stream { partitions } => admin
                    .declare_stream(name, &StreamSpec::partitions(partitions))
                    .await
                    .map(|change| change.status),
            };
            match status {
                Ok(status) => {
                    let answered = Instant::now();
                    tally
                        .latencies
                        .record_micros(answered.duration_since(sent).as_micros() as u64);
                    declared = Some((status, answered));
                    break;
                }
                Err(error) => {
                    shared.failed_attempt(&error);
                    if !worth_retrying(&error) || Instant::now() >= shared.deadline {
                        break;
                    }
                    // Whatever the answer asked, or a short pause.
                    let pause = error.retry_after().unwrap_or(Duration::from_millis(200));
                    tokio::time::sleep(pause.min(Duration::from_secs(5))).await;
                }
            }
        }
        match declared {
            Some((status, answered)) => {
                *tally.statuses.entry(status.as_u16()).or_default() += 1;
                tally
                    .completions
                    .push(answered.duration_since(shared.start));
                tally.names.push(name.clone());
            }
            None => tally.failed += 1,
        }
    }
}

/// Declares `names` as `kind` with `concurrency` tasks, each with its own
/// connection pool; nothing is sent after `deadline`.
pub async fn declare_all(
    control_url: &str,
    admin_key: &str,
    names: Vec<String>,
    kind: Kind,
    concurrency: usize,
    deadline: Instant,
) -> anyhow::Result<Declared> {
    let requested = names.len();
    let shared = Arc::new(Shared {
        names,
        next: AtomicUsize::new(0),
        start: Instant::now(),
        deadline,
        errors: Mutex::new((BTreeMap::new(), Vec::new())),
    });
    // Retries are ours, so that each failed attempt is counted.
    let admin = Client::new(control_url)
        .with_bearer(admin_key)
        .with_retry(RetryPolicy::NONE)
        .with_timeout(DECLARE_TIMEOUT);
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| tokio::spawn(declare_loop(shared.clone(), admin.with_own_pool(), kind)))
        .collect();
    let mut declared = Declared {
        names: Vec::with_capacity(requested),
        requested,
        created: 0,
        accepted: 0,
        unchanged: 0,
        failed: 0,
        errors: BTreeMap::new(),
        error_samples: Vec::new(),
        elapsed: Duration::ZERO,
        completions: Vec::with_capacity(requested),
        latencies: Latencies::new(),
    };
    for task in tasks {
        let tally = task.await.context("a declaring task panicked")?;
        declared.names.extend(tally.names);
        declared.completions.extend(tally.completions);
        declared.failed += tally.failed;
        declared.latencies.merge(&tally.latencies);
        for (status, count) in tally.statuses {
            match status {
                201 => declared.created += count,
                202 => declared.accepted += count,
                _ => declared.unchanged += count,
            }
        }
    }
    declared.elapsed = shared.start.elapsed();
    if let Ok(mut errors) = shared.errors.lock() {
        declared.errors = std::mem::take(&mut errors.0);
        declared.error_samples = std::mem::take(&mut errors.1);
    }
    Ok(declared)
}

//! The queue scenario: `publishers × window` tasks publish batches with
//! confirms while `consumers` tasks long-poll receive and ack (or, with
//! `--push`, read the consume stream and ack, see [`crate::push`]), until
//! every confirmed message is acked or the time limit passes.
//!
//! Each body starts with its publish request's send time (20 decimal
//! digits of microseconds since the run's start, then `|`), then, when
//! `--size` leaves room, the message's index and `|`, padded with `x` to
//! `--size` bytes: the end-to-end latency of a message is its receive time
//! minus that send time, measured by one clock, and every index is checked
//! off as it arrives ([`crate::deep::Checklist`]), which counts messages
//! lost or delivered twice.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sluice_client::Client;
use sluice_client::data::{
    AckRequest, OutgoingMessage, QueuePublishRequest, ReceiveRequest, ReceivedMessage,
};
use tokio::sync::watch;

use crate::args::QueueArgs;
use crate::deep::{Checklist, MemoryWatch, Phase};
use crate::report::{Latencies, round3};
use crate::target::{Resident, Stop, Target};

const STAMP_DIGITS: usize = 20;
/// Kept in the report at most, so a failing run stays one readable line.
const MAX_ERRORS: usize = 5;

/// Counters shared by every task of one run.
pub(crate) struct Shared {
    pub epoch: Instant,
    pub deadline: Instant,
    /// The next message index a publisher may claim.
    next: AtomicU64,
    stored: AtomicU64,
    publish_failed: AtomicU64,
    publish_requests: AtomicU64,
    received: AtomicU64,
    redelivered: AtomicU64,
    acked: AtomicU64,
    /// Push consume streams that ended or failed and were opened again.
    pub stream_restarts: AtomicU64,
    last_confirm: Mutex<Option<Instant>>,
    last_ack: Mutex<Option<Instant>>,
    /// The first message any consumer received (a restarted broker's first
    /// delivery).
    first_receive: Mutex<Option<Instant>>,
    /// Message indexes received.
    checklist: Checklist,
    /// Messages received again without being marked redelivered.
    duplicates: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    pub fn error(&self, message: String) {
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < MAX_ERRORS
        {
            errors.push(message);
        }
    }

    fn mark(slot: &Mutex<Option<Instant>>, at: Instant) {
        if let Ok(mut last) = slot.lock() {
            *last = Some(last.map_or(at, |previous| previous.max(at)));
        }
    }

    fn read(slot: &Mutex<Option<Instant>>) -> Option<Instant> {
        slot.lock().ok().and_then(|last| *last)
    }
}

/// A body of `size` bytes carrying `sent_micros` and, when it fits,
/// `index`.
fn body(sent_micros: u64, index: u64, size: usize) -> String {
    let mut body = format!("{sent_micros:0STAMP_DIGITS$}|");
    let with_index = format!("{body}{index}|");
    if with_index.len() <= size {
        body = with_index;
    }
    body.extend(std::iter::repeat_n('x', size.saturating_sub(body.len())));
    body
}

fn sent_micros(body: &str) -> Option<u64> {
    body.get(..STAMP_DIGITS)?.parse().ok()
}

fn message_index(body: &str) -> Option<u64> {
    body.get(STAMP_DIGITS + 1..)?
        .split('|')
        .next()?
        .parse()
        .ok()
}

/// Counts messages that arrived at `received_at` and records the
/// end-to-end latency of those delivered for the first time.
pub(crate) fn record_received<'a>(
    shared: &Shared,
    latencies: &mut ConsumerLatencies,
    received_at: Instant,
    messages: impl IntoIterator<Item = &'a ReceivedMessage>,
) {
    let now_micros = received_at.duration_since(shared.epoch).as_micros() as u64;
    let mut count = 0;
    for message in messages {
        count += 1;
        if let Some(index) = message_index(&message.body)
            && !shared.checklist.check(index)
            && !message.redelivered
        {
            shared.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        if message.redelivered {
            shared.redelivered.fetch_add(1, Ordering::Relaxed);
        } else if let Some(sent) = sent_micros(&message.body) {
            latencies.e2e.record_micros(now_micros.saturating_sub(sent));
        }
    }
    latencies.received += count;
    shared.received.fetch_add(count, Ordering::Relaxed);
    if count > 0
        && let Ok(mut first) = shared.first_receive.lock()
    {
        *first = Some(first.map_or(received_at, |earlier| earlier.min(received_at)));
    }
}

/// `POST /ack` of `receipts`, counted in `shared` and timed in `latencies`.
pub(crate) async fn ack(
    shared: &Shared,
    client: &Client,
    queue: &str,
    receipts: &[String],
    latencies: &mut Latencies,
) {
    let ack_sent = Instant::now();
    let outcome = client
        .ack(queue, &AckRequest::new(receipts))
        .await
        .map(|answer| answer.results.iter().filter(|r| r.ok()).count() as u64);
    let acked_at = Instant::now();
    match outcome {
        Ok(acked) => {
            latencies.record_micros(acked_at.duration_since(ack_sent).as_micros() as u64);
            if acked < receipts.len() as u64 {
                shared.error(format!(
                    "ack: {} of {} receipts refused",
                    receipts.len() as u64 - acked,
                    receipts.len()
                ));
            }
            shared.acked.fetch_add(acked, Ordering::Relaxed);
            Shared::mark(&shared.last_ack, acked_at);
        }
        Err(error) => shared.error(format!("ack: {error}")),
    }
}

/// One publisher slot: claims `batch` messages at a time until all are claimed.
async fn publish_loop(
    shared: Arc<Shared>,
    client: Client,
    queue: String,
    args: Arc<QueueArgs>,
) -> Latencies {
    let mut latencies = Latencies::new();
    loop {
        let first = shared.next.fetch_add(args.batch, Ordering::Relaxed);
        if first >= args.messages || Instant::now() >= shared.deadline {
            return latencies;
        }
        let count = args.batch.min(args.messages - first);
        if args.rate > 0 {
            // Open loop: message `first` is due at `first / rate` seconds into the run.
            let due = shared.epoch + Duration::from_secs_f64(first as f64 / args.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        let sent_micros = sent.duration_since(shared.epoch).as_micros() as u64;
        let texts: Vec<String> = (first..first + count)
            .map(|index| body(sent_micros, index, args.size as usize))
            .collect();
        let request = QueuePublishRequest {
            messages: texts
                .iter()
                .map(|text| OutgoingMessage::text(text.as_str()))
                .collect(),
        };
        let outcome = client
            .publish_to_queue(&queue, &request)
            .await
            .map(|answer| answer.results.iter().filter(|r| r.stored()).count() as u64);
        let confirmed = Instant::now();
        shared.publish_requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(stored) => {
                latencies.record_micros(confirmed.duration_since(sent).as_micros() as u64);
                shared.stored.fetch_add(stored, Ordering::Relaxed);
                if stored < count {
                    shared
                        .publish_failed
                        .fetch_add(count - stored, Ordering::Relaxed);
                    shared.error(format!("publish: {} of {count} not stored", count - stored));
                }
                Shared::mark(&shared.last_confirm, confirmed);
            }
            Err(error) => {
                shared.publish_failed.fetch_add(count, Ordering::Relaxed);
                shared.error(format!("publish: {error}"));
            }
        }
    }
}

/// What one consumer measured.
pub(crate) struct ConsumerLatencies {
    pub e2e: Latencies,
    pub ack: Latencies,
    /// Messages it got, redeliveries included.
    pub received: u64,
}

impl ConsumerLatencies {
    pub fn new() -> Self {
        ConsumerLatencies {
            e2e: Latencies::new(),
            ack: Latencies::new(),
            received: 0,
        }
    }
}

/// One consumer: receive (long-poll) → ack, until `stop` turns true or the deadline.
async fn consume_loop(
    shared: Arc<Shared>,
    client: Client,
    queue: String,
    args: Arc<QueueArgs>,
    mut stop: watch::Receiver<bool>,
) -> ConsumerLatencies {
    let mut latencies = ConsumerLatencies::new();
    let receive = ReceiveRequest {
        max_messages: Some(args.max_messages as u32),
        wait_ms: Some(args.wait_ms),
        lease_ms: Some(args.lease_ms),
        consumer: None,
    };
    while Instant::now() < shared.deadline && !*stop.borrow() {
        let outcome = tokio::select! {
            biased;
            _ = stop.changed() => break,
            outcome = client.receive(&queue, &receive) => outcome,
        };
        let received_at = Instant::now();
        let messages = match outcome {
            Ok(answer) => answer.messages,
            Err(error) => {
                shared.error(format!("receive: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        record_received(&shared, &mut latencies, received_at, &messages);
        let receipts: Vec<String> = messages.into_iter().map(|m| m.receipt).collect();
        ack(&shared, &client, &queue, &receipts, &mut latencies.ack).await;
    }
    latencies
}

/// Runs the scenario against `target` and returns the report's queue part.
pub async fn run(target: &mut Target, args: Arc<QueueArgs>) -> anyhow::Result<Value> {
    let epoch = Instant::now();
    let shared = Arc::new(Shared {
        epoch,
        deadline: epoch + Duration::from_secs(args.timeout_secs),
        next: AtomicU64::new(0),
        stored: AtomicU64::new(0),
        publish_failed: AtomicU64::new(0),
        publish_requests: AtomicU64::new(0),
        received: AtomicU64::new(0),
        redelivered: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        stream_restarts: AtomicU64::new(0),
        last_confirm: Mutex::new(None),
        last_ack: Mutex::new(None),
        first_receive: Mutex::new(None),
        checklist: Checklist::new(args.messages),
        duplicates: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let (stop, stopped) = watch::channel(false);
    let rss = |target: &Target| target.spawned.as_ref().and_then(|s| s.broker_memory());
    let rss_idle = rss(target);
    let watch = match (args.backlog, target.broker_pid()) {
        (true, Some(pid)) => Some(MemoryWatch::start(pid)),
        _ => None,
    };
    let queue = target.name.clone();
    // One client (one connection pool) per consumer and per publisher.
    let spawn_consumers = |target: &Target| {
        (0..args.consumers)
            .map(|index| {
                let (shared, client, queue, args, stopped) = (
                    shared.clone(),
                    target.data_client(),
                    queue.clone(),
                    args.clone(),
                    stopped.clone(),
                );
                if args.push {
                    tokio::spawn(crate::push::consume_loop(
                        shared, client, queue, args, index, stopped,
                    ))
                } else {
                    tokio::spawn(consume_loop(shared, client, queue, args, stopped))
                }
            })
            .collect::<Vec<_>>()
    };
    let mut consumers = if args.backlog {
        Vec::new()
    } else {
        spawn_consumers(target)
    };
    let mut publishers = Vec::new();
    for _ in 0..args.publishers {
        let client = target.data_client();
        for _ in 0..args.window {
            publishers.push(tokio::spawn(publish_loop(
                shared.clone(),
                client.clone(),
                queue.clone(),
                args.clone(),
            )));
        }
    }
    let mut publish_latencies = Latencies::new();
    for publisher in publishers {
        publish_latencies.merge(&publisher.await.context("a publisher panicked")?);
    }
    let mut backlog = None;
    if args.backlog {
        let rss_held = rss(target);
        // Before any restart, so the restarted broker starts cold too and
        // its time to a first delivery includes no work of this tool.
        let evicted = match (args.evict_cache, target.broker_data_dir()) {
            (true, Some(dir)) => Some(
                tokio::task::spawn_blocking(move || crate::deep::evict_cache(&dir))
                    .await
                    .context("the cache evictor panicked")??,
            ),
            _ => None,
        };
        let mut recovery = None;
        let stop = if args.crash {
            Some(Stop::Kill)
        } else if args.restart {
            Some(Stop::Graceful)
        } else {
            None
        };
        if let Some(stop) = stop {
            if let (Some(watch), Some(pid)) = (&watch, target.broker_pid()) {
                watch.enter(Phase::Restart, pid);
            }
            let restarted = target
                .restart_broker(stop, "restarted", Duration::from_secs(300))
                .await?;
            recovery = Some(Recovery {
                kind: stop.name(),
                ready: restarted.ready,
                started: restarted.started,
                rss_recovered: rss(target),
            });
        }
        if let (Some(watch), Some(pid)) = (&watch, target.broker_pid()) {
            watch.enter(Phase::Drain, pid);
        }
        backlog = Some(Backlog {
            rss_held,
            recovery,
            evicted,
            drain_start: Instant::now(),
        });
        consumers = spawn_consumers(target);
    }

    // Every confirmed message acked (or the deadline) ends the run; consumers
    // still parked in a long-poll are aborted, their latencies kept.
    let stored = shared.stored.load(Ordering::Relaxed);
    while shared.acked.load(Ordering::Relaxed) < stored && Instant::now() < shared.deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Consumers parked in a long-poll are woken by `stop` and hand back their histograms.
    let _ = stop.send(true);
    let mut e2e = Latencies::new();
    let mut ack = Latencies::new();
    let mut consumer_received = Vec::new();
    let grace = Duration::from_secs(10);
    for consumer in consumers {
        match tokio::time::timeout(grace, consumer).await {
            Ok(Ok(latencies)) => {
                e2e.merge(&latencies.e2e);
                ack.merge(&latencies.ack);
                consumer_received.push(json!(latencies.received));
            }
            _ => {
                shared.error("a consumer did not stop".to_string());
                consumer_received.push(Value::Null);
            }
        }
    }

    let stored = shared.stored.load(Ordering::Relaxed);
    let acked = shared.acked.load(Ordering::Relaxed);
    let failed = shared.publish_failed.load(Ordering::Relaxed);
    let complete = acked >= args.messages && failed == 0;
    let requests = shared.publish_requests.load(Ordering::Relaxed);
    let whole =
        Shared::read(&shared.last_ack).map_or(0.0, |at| at.duration_since(epoch).as_secs_f64());
    let publishing =
        Shared::read(&shared.last_confirm).map_or(0.0, |at| at.duration_since(epoch).as_secs_f64());
    let per_s = |count: u64, secs: f64| {
        if secs > 0.0 {
            round3(count as f64 / secs)
        } else {
            0.0
        }
    };
    let mb_per_s = |count: u64, secs: f64| {
        if secs > 0.0 {
            round3(count as f64 * args.size as f64 / 1e6 / secs)
        } else {
            0.0
        }
    };
    let memory_watch = match watch {
        Some(watch) => Some(watch.finish().await),
        None => None,
    };
    let first_receive = Shared::read(&shared.first_receive);
    let memory = backlog.map(|backlog| {
        let drain_secs = Shared::read(&shared.last_ack).map_or(0.0, |at| {
            at.saturating_duration_since(backlog.drain_start)
                .as_secs_f64()
        });
        let mut report = backlog.report(
            rss_idle,
            rss(target),
            stored,
            args.size,
            per_s(acked, drain_secs),
            first_receive,
        );
        report["memory_watch"] = json!(memory_watch);
        report
    });
    // Only meaningful when bodies had room for their index.
    let indexed = body(0, args.messages, args.size as usize).len() as u64 <= args.size;
    let distinct = shared.checklist.distinct();
    let integrity = indexed.then(|| {
        json!({
            "distinct_received": distinct,
            "lost": stored.saturating_sub(distinct),
            "duplicates": shared.duplicates.load(Ordering::Relaxed),
        })
    });
    let errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let push_only = |value: u64| if args.push { json!(value) } else { Value::Null };
    let receipts_per_ack = match ack.count() {
        0 => Value::Null,
        requests => json!(round3(acked as f64 / requests as f64)),
    };
    Ok(json!({
        "complete": complete,
        "published": stored,
        "publish_failed": failed,
        "received": shared.received.load(Ordering::Relaxed),
        "redelivered": shared.redelivered.load(Ordering::Relaxed),
        "acked": acked,
        "elapsed_s": round3(whole),
        "publish_elapsed_s": round3(publishing),
        "msgs_per_s": per_s(acked, whole),
        "mb_per_s": mb_per_s(acked, whole),
        "publish_msgs_per_s": per_s(stored, publishing),
        "publish_mb_per_s": mb_per_s(stored, publishing),
        "publish_requests_per_s": per_s(requests, publishing),
        "e2e_latency_ms": e2e.to_json(),
        "publish_latency_ms": publish_latencies.to_json(),
        "ack_latency_ms": ack.to_json(),
        "consumer_received": consumer_received,
        "ack_batch": push_only(args.ack_batch),
        "ack_linger_ms": push_only(args.ack_linger_ms),
        "receipts_per_ack": receipts_per_ack,
        "stream_restarts": shared.stream_restarts.load(Ordering::Relaxed),
        "backlog": memory,
        "integrity": integrity,
        "errors": errors,
    }))
}

/// With `--backlog`: the broker's memory while holding every message, and
/// how fast the consumers drained them.
struct Backlog {
    rss_held: Option<Resident>,
    /// With `--crash` or `--restart`: the broker restarted before the drain.
    recovery: Option<Recovery>,
    /// With `--evict-cache`: what was dropped from the page cache.
    evicted: Option<Value>,
    drain_start: Instant,
}

struct Recovery {
    /// `sigkill` or `sigterm`.
    kind: &'static str,
    /// From the restarted broker's start until it answered ready.
    ready: Duration,
    /// When the restarted broker was started.
    started: Instant,
    rss_recovered: Option<Resident>,
}

impl Backlog {
    /// The memory figures are null without a spawned broker (no pid to read).
    fn report(
        &self,
        rss_idle: Option<Resident>,
        rss_drained: Option<Resident>,
        messages: u64,
        size: u64,
        drain_msgs_per_s: f64,
        first_receive: Option<Instant>,
    ) -> Value {
        let mb = |bytes: u64| round3(bytes as f64 / 1e6);
        let at = |resident: Option<Resident>| {
            resident.map(|r| json!({"rss_mb": mb(r.total), "anonymous_mb": mb(r.anonymous)}))
        };
        // What each held message costs in anonymous memory beyond the idle
        // broker, and that as a share of its body (bodies live in the log on
        // disk; file pages of mapped segments are the kernel's to reclaim).
        let per_message = match (rss_idle, self.rss_held) {
            (Some(idle), Some(held)) if messages > 0 => {
                Some(held.anonymous.saturating_sub(idle.anonymous) as f64 / messages as f64)
            }
            _ => None,
        };
        json!({
            "messages_held": messages,
            "drain_msgs_per_s": drain_msgs_per_s,
            "idle": at(rss_idle),
            "held": at(self.rss_held),
            "drained": at(rss_drained),
            "crash": self.recovery.as_ref().map(|r| json!({
                "stop": r.kind,
                "ready_after_restart_s": round3(r.ready.as_secs_f64()),
                // From the new process's start to the first message a
                // consumer received: ready to deliver, not just to answer.
                "first_delivery_after_restart_s": first_receive
                    .map(|at| round3(at.saturating_duration_since(r.started).as_secs_f64())),
                "recovered": at(r.rss_recovered),
            })),
            "evicted": self.evicted,
            "anonymous_bytes_per_held_message": per_message.map(round3),
            "anonymous_per_held_message_over_body": per_message.map(|b| round3(b / size as f64)),
        })
    }
}

//! What a queue group did: messages published, delivered (redelivered among
//! them), acked, nacked and dead-lettered, counted in the one place that sees
//! every applied command this broker proposes — `QueueGroup::propose`, which
//! the HTTP handlers, push dispatch, the timer task (lease expiry, TTL,
//! delays), the dead-letter forwarder and redrives all go through. Counting
//! at the proposer rather than in the state machine keeps a restart's log
//! replay (and, later, followers applying the same entries) from counting an
//! event twice.
//!
//! The counters feed `/metrics` (Prometheus computes rates from them) and a
//! sliding-window rate for the stats endpoints: a sampler task owned by the
//! group records the totals every second and publishes the oldest sample of
//! the last [`RATE_WINDOW`]; a reader divides what happened since that sample
//! by the time since it. The arithmetic takes the clock as an argument, so
//! its tests need no sleeps.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use sluice_queue::{Command, PublishResult, Reply};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::outcome::CommandOutcome;

/// The span the stats rates average over.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How often the sampler records the totals.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Shortest span a rate is divided by: a group opened a moment ago must not
/// report one message as thousands per second.
const MIN_SPAN: Duration = Duration::from_secs(1);

/// Counts of what happened, since the group was opened on this broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages stored (duplicates, rejected and overflow dead-lettered
    /// publishes are not).
    pub published: u64,
    pub published_bytes: u64,
    /// Every delivery, redeliveries included.
    pub delivered: u64,
    /// Deliveries of messages delivered before (nack requeue, lease expiry,
    /// a push consumer gone).
    pub redelivered: u64,
    pub acked: u64,
    pub nacked: u64,
    /// Messages that left the queue for good: delivery limit, TTL, overflow,
    /// nack to dead-letter — with or without a dead-letter exchange.
    pub dead_lettered: u64,
    /// Dead letters their dead-letter exchange routed nowhere (no binding
    /// matched, no alternate exchange took them): gone, and counted so
    /// that a misrouted dead-letter setup shows instead of losing quietly.
    pub dead_letters_dropped: u64,
}

impl Totals {
    /// What applying `command` did, as `outcome` reports it.
    pub fn of(command: &Command, outcome: &CommandOutcome) -> Totals {
        let mut totals = Totals {
            dead_lettered: outcome.dead_letters.len() as u64,
            ..Totals::default()
        };
        match (&outcome.result, command) {
            (Ok(Reply::Published { results }), Command::Publish { messages }) => {
                for (result, message) in results.iter().zip(messages) {
                    if matches!(result, PublishResult::Stored { .. }) {
                        totals.published += 1;
                        totals.published_bytes += message.size;
                    }
                }
            }
            (Ok(Reply::Received { deliveries }), _) => {
                totals.delivered = deliveries.len() as u64;
                totals.redelivered = deliveries.iter().filter(|d| d.redelivered).count() as u64;
            }
            (Ok(Reply::Acked { results, refilled }), _) => {
                totals.acked = results.iter().filter(|r| r.is_ok()).count() as u64;
                totals.delivered = refilled.len() as u64;
                totals.redelivered = refilled.iter().filter(|d| d.redelivered).count() as u64;
            }
            (Ok(Reply::Nacked { .. }), _) => totals.nacked = 1,
            _ => {}
        }
        totals
    }

    fn is_empty(&self) -> bool {
        *self == Totals::default()
    }
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, other: Totals) {
        self.published += other.published;
        self.published_bytes += other.published_bytes;
        self.delivered += other.delivered;
        self.redelivered += other.redelivered;
        self.acked += other.acked;
        self.nacked += other.nacked;
        self.dead_lettered += other.dead_lettered;
        self.dead_letters_dropped += other.dead_letters_dropped;
    }
}

/// Messages per second over the last [`RATE_WINDOW`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rates {
    /// Messages stored.
    pub publish: f64,
    /// Deliveries, redeliveries included.
    pub deliver: f64,
    pub ack: f64,
    /// Deliveries of messages delivered before.
    pub redeliver: f64,
    /// Messages dead-lettered (or dropped without a dead-letter exchange).
    pub dead_letter: f64,
}

/// The totals at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub totals: Totals,
}

/// The rates from `base` to `now`, when the totals are `totals`.
pub fn rates(base: Sample, now: Instant, totals: Totals) -> Rates {
    let span = now.saturating_duration_since(base.at).max(MIN_SPAN);
    let per_second = |now: u64, then: u64| {
        let rate = now.saturating_sub(then) as f64 / span.as_secs_f64();
        // Three decimals are plenty, and keep the JSON readable.
        (rate * 1000.0).round() / 1000.0
    };
    let then = base.totals;
    Rates {
        publish: per_second(totals.published, then.published),
        deliver: per_second(totals.delivered, then.delivered),
        ack: per_second(totals.acked, then.acked),
        redeliver: per_second(totals.redelivered, then.redelivered),
        dead_letter: per_second(totals.dead_lettered, then.dead_lettered),
    }
}

/// The samples of the last [`RATE_WINDOW`], oldest first. The oldest kept is
/// the newest one at least a window old, so once the group is that old a
/// rate always spans a whole window (up to one sampling period more).
#[derive(Debug)]
pub struct RateWindow {
    samples: VecDeque<Sample>,
}

impl RateWindow {
    pub fn new(first: Sample) -> RateWindow {
        RateWindow {
            samples: VecDeque::from([first]),
        }
    }

    /// Adds `sample` and forgets what no window needs any more.
    pub fn record(&mut self, sample: Sample) {
        self.samples.push_back(sample);
        while self
            .samples
            .get(1)
            .is_some_and(|next| sample.at.saturating_duration_since(next.at) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Where rates are measured from.
    pub fn base(&self) -> Sample {
        // Never empty: `new` puts one sample in and `record` keeps the last.
        self.samples[0]
    }
}

/// A group's counters and its rate window's base; shared by the group (which
/// counts), its sampler task (which moves the base) and readers.
#[derive(Debug)]
pub struct Activity {
    published: AtomicU64,
    published_bytes: AtomicU64,
    delivered: AtomicU64,
    redelivered: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    dead_lettered: AtomicU64,
    dead_letters_dropped: AtomicU64,
    base: watch::Sender<Sample>,
}

impl Activity {
    pub fn new(now: Instant) -> Activity {
        let (base, _) = watch::channel(Sample {
            at: now,
            totals: Totals::default(),
        });
        Activity {
            published: AtomicU64::new(0),
            published_bytes: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            dead_letters_dropped: AtomicU64::new(0),
            base,
        }
    }

    /// Adds what one command did.
    pub fn add(&self, delta: &Totals) {
        if delta.is_empty() {
            return;
        }
        for (counter, n) in [
            (&self.published, delta.published),
            (&self.published_bytes, delta.published_bytes),
            (&self.delivered, delta.delivered),
            (&self.redelivered, delta.redelivered),
            (&self.acked, delta.acked),
            (&self.nacked, delta.nacked),
            (&self.dead_lettered, delta.dead_lettered),
            (&self.dead_letters_dropped, delta.dead_letters_dropped),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub fn totals(&self) -> Totals {
        Totals {
            published: self.published.load(Ordering::Relaxed),
            published_bytes: self.published_bytes.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            nacked: self.nacked.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dead_letters_dropped: self.dead_letters_dropped.load(Ordering::Relaxed),
        }
    }

    /// Rates over the last window, as of `now`.
    pub fn rates(&self, now: Instant) -> Rates {
        let base = *self.base.borrow();
        rates(base, now, self.totals())
    }
}

/// The sampler: records the totals every second into the window it owns and
/// publishes the window's base, until `stop`.
pub async fn sample(activity: Arc<Activity>, stop: CancellationToken) {
    let mut window = RateWindow::new(*activity.base.borrow());
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        window.record(Sample {
            at: Instant::now(),
            totals: activity.totals(),
        });
        activity.base.send_replace(window.base());
    }
}

/// What the queues hosted here did, summed per tenant: the per-tenant
/// series of `/metrics`. They outlive a deleted queue (so `rate()` over them
/// never sees a counter go backwards) but not a deleted tenant, which
/// [`TenantActivity::retain`] drops.
#[derive(Debug, Default)]
pub struct TenantActivity {
    by_tenant: std::sync::Mutex<std::collections::BTreeMap<String, Totals>>,
}

impl TenantActivity {
    /// Adds what one command did to its tenant's totals.
    pub fn add(&self, tenant: &str, done: &Totals) {
        if done.is_empty() {
            return;
        }
        let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        *by_tenant.entry(tenant.to_string()).or_default() += *done;
    }

    /// The totals of the tenants `live` accepts; the others (deleted
    /// tenants) are dropped for good.
    pub fn retain(&self, live: impl Fn(&str) -> bool) -> Vec<(String, Totals)> {
        let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        by_tenant.retain(|tenant, _| live(tenant));
        by_tenant
            .iter()
            .map(|(t, done)| (t.clone(), *done))
            .collect()
    }
}

#[cfg(test)]
mod tests {

    use sluice_queue::{
        BodyRef, ConsumerId, NackAction, Overflow, PublishMessage, QueueSettings, QueueState,
        TimedCommand,
    };

    use super::*;

    fn totals(published: u64, delivered: u64) -> Totals {
        Totals {
            published,
            delivered,
            ..Totals::default()
        }
    }

    #[test]
    fn a_rate_is_what_happened_since_the_base_per_second() {
        let t0 = Instant::now();
        let base = Sample {
            at: t0,
            totals: totals(100, 40),
        };
        let rates = rates(base, t0 + Duration::from_secs(4), totals(120, 50));
        assert_eq!(rates.publish, 5.0);
        assert_eq!(rates.deliver, 2.5);
        assert_eq!(rates.ack, 0.0);
    }

    #[test]
    fn a_young_group_divides_by_at_least_a_second() {
        let t0 = Instant::now();
        let base = Sample {
            at: t0,
            totals: Totals::default(),
        };
        let rates = rates(base, t0 + Duration::from_millis(10), totals(3, 0));
        assert_eq!(rates.publish, 3.0);
    }

    #[test]
    fn the_window_slides_and_keeps_a_base_a_whole_window_old() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut window = RateWindow::new(Sample {
            at: at(0),
            totals: Totals::default(),
        });
        // 10 messages a second for 30 s, sampled every second.
        for s in 1..=30 {
            window.record(Sample {
                at: at(s),
                totals: totals(10 * s, 0),
            });
            let base = window.base();
            let age = at(s).duration_since(base.at);
            assert_eq!(
                age,
                Duration::from_secs(s.min(10)),
                "base after {s} s is {age:?} old"
            );
        }
        assert!(window.samples.len() <= 11, "{}", window.samples.len());
        assert_eq!(rates(window.base(), at(30), totals(300, 0)).publish, 10.0);

        // Then silence: the rate decays to zero once a window has passed.
        let mut quiet = |s: u64| rates(window_at(&mut window, at(s), 300), at(s), totals(300, 0));
        assert_eq!(quiet(35).publish, 5.0, "half the window still saw traffic");
        assert_eq!(quiet(40).publish, 0.0);
    }

    fn window_at(window: &mut RateWindow, at: Instant, published: u64) -> Sample {
        let mut last = window.samples.back().map(|s| s.at).unwrap_or(at);
        while last < at {
            last += Duration::from_secs(1);
            window.record(Sample {
                at: last,
                totals: totals(published, 0),
            });
        }
        window.base()
    }

    #[test]
    fn a_sample_arriving_late_is_still_kept_until_a_newer_one_is_a_window_old() {
        let t0 = Instant::now();
        let mut window = RateWindow::new(Sample {
            at: t0,
            totals: Totals::default(),
        });
        // The sampler stalled for 25 s: the one old sample stays the base.
        window.record(Sample {
            at: t0 + Duration::from_secs(25),
            totals: totals(50, 0),
        });
        assert_eq!(window.base().at, t0);
        window.record(Sample {
            at: t0 + Duration::from_secs(26),
            totals: totals(52, 0),
        });
        assert_eq!(window.base().at, t0);
        window.record(Sample {
            at: t0 + Duration::from_secs(35),
            totals: totals(70, 0),
        });
        assert_eq!(window.base().at, t0 + Duration::from_secs(25));
    }

    fn message(size: u64) -> PublishMessage {
        PublishMessage::new(
            BodyRef {
                log_index: 0,
                slot: 1,
            },
            size,
        )
    }

    /// A queue and the sum of what its commands did.
    struct Run {
        queue: QueueState,
        index: u64,
        sum: Totals,
    }

    impl Run {
        fn apply(&mut self, now_ms: u64, command: Command) -> (Option<Reply>, Totals) {
            self.index += 1;
            let applied = self
                .queue
                .apply(self.index, TimedCommand::new(now_ms, command.clone()));
            let outcome: CommandOutcome = applied.into();
            let delta = Totals::of(&command, &outcome);
            self.sum += delta;
            (outcome.result.ok(), delta)
        }
    }

    #[test]
    fn counts_follow_what_the_queue_did() {
        let settings: QueueSettings = serde_json::from_value(serde_json::json!({
            "delivery_limit": 2,
            "max_length": 3,
            "overflow": "reject-publish",
        }))
        .expect("settings");
        assert_eq!(settings.overflow, Overflow::RejectPublish);
        let mut run = Run {
            queue: QueueState::new(settings),
            index: 0,
            sum: Totals::default(),
        };

        // Four published, one refused by max_length: three stored.
        let publish = Command::Publish {
            messages: vec![message(10), message(20), message(30), message(40)],
        };
        let (_, delta) = run.apply(1_000, publish);
        assert_eq!((delta.published, delta.published_bytes), (3, 60));

        let consumer = ConsumerId("c".into());
        let receive = |max| Command::Receive {
            consumer: consumer.clone(),
            max_messages: max,
            lease_ms: Some(1_000),
        };
        let (reply, delta) = run.apply(1_000, receive(3));
        let Some(Reply::Received { deliveries }) = reply else {
            panic!("receive: {reply:?}");
        };
        assert_eq!((delta.delivered, delta.redelivered), (3, 0));

        // One acked, one nacked back (requeued), one left to expire.
        let ack = Command::Ack {
            receipts: vec![deliveries[0].receipt],
            refill: None,
        };
        assert_eq!(run.apply(1_100, ack).1.acked, 1);
        let nack = Command::Nack {
            receipt: deliveries[1].receipt,
            action: NackAction::RequeueNow,
        };
        assert_eq!(run.apply(1_100, nack).1.nacked, 1);

        // The lease ran out: a tick requeues it; both come back as redeliveries.
        run.apply(2_500, Command::Tick);
        let (_, delta) = run.apply(2_500, receive(10));
        assert_eq!((delta.delivered, delta.redelivered), (2, 2));

        // Their second lease runs out too: the delivery limit of 2 dead-letters
        // both (no dead-letter exchange: dropped, still counted).
        let (_, delta) = run.apply(10_000, Command::Tick);
        assert_eq!(delta.dead_lettered, 2);
        assert_eq!(
            run.sum,
            Totals {
                published: 3,
                published_bytes: 60,
                delivered: 5,
                redelivered: 2,
                acked: 1,
                nacked: 1,
                dead_lettered: 2,
                dead_letters_dropped: 0,
            }
        );
        let stats = run.queue.stats();
        assert_eq!(stats.ready + stats.unacked + stats.delayed, 0);
    }

    #[test]
    fn an_ack_that_refills_counts_what_it_delivered() {
        let mut run = Run {
            queue: QueueState::new(QueueSettings::default()),
            index: 0,
            sum: Totals::default(),
        };
        let consumer = ConsumerId("push".into());
        run.apply(
            1_000,
            Command::ConsumerUp {
                consumer: consumer.clone(),
            },
        );
        let publish = Command::Publish {
            messages: vec![message(10), message(20)],
        };
        run.apply(1_000, publish);
        let receive = Command::Receive {
            consumer: consumer.clone(),
            max_messages: 1,
            lease_ms: None,
        };
        let (reply, _) = run.apply(1_000, receive);
        let Some(Reply::Received { deliveries }) = reply else {
            panic!("receive: {reply:?}");
        };
        let ack = Command::Ack {
            receipts: vec![deliveries[0].receipt],
            refill: Some(sluice_queue::Refill {
                consumer,
                prefetch: 1,
                lease_ms: None,
            }),
        };
        let (_, delta) = run.apply(1_100, ack);
        assert_eq!((delta.acked, delta.delivered, delta.redelivered), (1, 1, 0));
    }

    #[test]
    fn activity_adds_deltas_and_reads_rates_from_its_base() {
        let t0 = Instant::now();
        let activity = Activity::new(t0);
        activity.add(&totals(4, 2));
        activity.add(&totals(6, 0));
        assert_eq!(activity.totals(), totals(10, 2));
        let rates = activity.rates(t0 + Duration::from_secs(2));
        assert_eq!((rates.publish, rates.deliver), (5.0, 1.0));
    }
}

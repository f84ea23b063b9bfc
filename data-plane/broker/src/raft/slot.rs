//! A group hosted here that sleeps while nobody uses it.
//!
//! An open group costs the broker its Raft tasks and timers, its open files
//! and its state in memory, whether or not anyone publishes to it; most of a
//! managed service's queues are idle most of the time. A [`Slot`] holds one
//! hosted group either awake (open, `Arc<G>`) or asleep (closed; only its
//! [`Hibernate::Summary`] — depths, settings, when its next timer falls due
//! — kept in memory and, written by [`Hibernate::sleep`], on disk).
//!
//! - Every use goes through [`Slot::acquire`], which wakes a sleeping group
//!   (one opener runs; concurrent callers wait for it) and answers an
//!   [`InUse`] guard. While any guard lives the group never falls asleep, so
//!   a long-poll or a push consumer keeps its queue awake.
//! - The host's sweeper ([`super::sweeper`], [`Slot::try_sleep`]) puts
//!   groups to sleep that nobody used for a while and that owe nothing
//!   outside themselves ([`Hibernate::may_sleep`]), and wakes sleeping
//!   groups whose timers fell due: one task for every group, no task or
//!   timer per sleeping group. Slots tell it when they wake, sleep and
//!   must wake for a timer, so it never walks the sleeping ones.
//! - A group that failed to open is not retried before a back-off passes
//!   (1 s, doubling to 30 s): running out of files or memory never turns
//!   into a hot retry loop, and callers get 503 meanwhile.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::now_ms;
use super::sweeper::{Sweeper, next_slot_id};

/// First wait before a group that failed to open is tried again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts to open a failing group.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a hosted group does to sleep.
pub trait Hibernate: Send + Sync + 'static {
    /// What a sleeping group still answers without opening.
    type Summary: Send + Sync + 'static;
    /// Whether nothing outside the group waits for it to be open: no dead
    /// letter to forward, no timer falling due in the next moments.
    fn may_sleep(&self, now_ms: u64) -> bool;
    /// Stops the group's tasks and its Raft group, closes its files and
    /// answers the summary of its final state (also kept on disk, so a
    /// restarted broker need not open it either).
    fn sleep(&self) -> impl Future<Output = Self::Summary> + Send;
    /// Closes the group without a sleep record (it owes something, so a
    /// restarted broker must open it).
    fn stop(&self) -> impl Future<Output = ()> + Send;
    /// When a sleeping group must wake to fire its timers.
    fn timer_due_ms(summary: &Self::Summary) -> Option<u64>;
}

/// Opens a slot's group: given the summary it slept with.
pub type Opener<G> = Box<
    dyn Fn(Arc<<G as Hibernate>::Summary>) -> BoxFuture<'static, anyhow::Result<Arc<G>>>
        + Send
        + Sync,
>;

/// Why a slot could not hand out its group.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlotError {
    /// The group was removed from this broker (its queue or stream is gone).
    #[error("the group was removed from this broker")]
    Removed,
    /// Opening failed; the next attempt waits `retry_after`.
    #[error("the group could not be opened ({error}); retrying in {retry_after:?}")]
    Failed {
        error: String,
        retry_after: Duration,
    },
}

enum Phase<G: Hibernate> {
    Asleep(Arc<G::Summary>),
    /// Being opened; the summary it slept with is still what it reports.
    Waking(Arc<G::Summary>),
    Awake(Arc<G>),
    /// Being closed; its view is still readable.
    FallingAsleep(Arc<G>),
    Removed,
}

/// What a slot's group is now, for readers that must not wake it (stats,
/// metrics, storage measurement).
pub enum Now<G: Hibernate> {
    Awake(Arc<G>),
    Asleep(Arc<G::Summary>),
    Removed,
}

/// The back-off after failed opens.
#[derive(Default)]
struct Failures {
    count: u32,
    /// `now_ms` before which no open is tried.
    until_ms: u64,
    error: String,
}

/// One hosted group, awake or asleep.
pub struct Slot<G: Hibernate> {
    phase: Mutex<Phase<G>>,
    /// Bumped on every change of phase; waiters subscribe before they look.
    changed: watch::Sender<u64>,
    users: AtomicUsize,
    last_used_ms: AtomicU64,
    failures: Mutex<Failures>,
    opener: Opener<G>,
    id: u64,
    me: Weak<Slot<G>>,
    sweeper: Arc<Sweeper<G>>,
}

impl<G: Hibernate> Slot<G> {
    /// A sleeping group (also one never opened: its summary is that of an
    /// empty group), watched by the host's `sweeper`.
    pub fn asleep(summary: G::Summary, opener: Opener<G>, sweeper: &Arc<Sweeper<G>>) -> Arc<Self> {
        let slot = Arc::new_cyclic(|me| Slot {
            phase: Mutex::new(Phase::Asleep(Arc::new(summary))),
            changed: watch::channel(0).0,
            users: AtomicUsize::new(0),
            last_used_ms: AtomicU64::new(now_ms()),
            failures: Mutex::default(),
            opener,
            id: next_slot_id(),
            me: me.clone(),
            sweeper: sweeper.clone(),
        });
        if let Now::Asleep(summary) = slot.now() {
            slot.watch_timer(&summary, 0);
        }
        slot
    }

    /// Asks the sweeper to wake this sleeping group when its next timer
    /// falls due (not before `not_before_ms`).
    fn watch_timer(&self, summary: &G::Summary, not_before_ms: u64) {
        if let Some(due) = G::timer_due_ms(summary) {
            self.sweeper
                .wake_at(due.max(not_before_ms), self.id, self.me.clone());
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase<G>> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn announce(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The group, woken if it sleeps; it stays awake while the guard lives.
    pub async fn acquire(self: &Arc<Self>) -> Result<InUse<G>, SlotError> {
        loop {
            let mut changed = self.changed.subscribe();
            {
                let mut phase = self.phase();
                match &*phase {
                    Phase::Awake(group) => {
                        self.users.fetch_add(1, Ordering::SeqCst);
                        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
                        return Ok(InUse {
                            group: group.clone(),
                            slot: self.clone(),
                        });
                    }
                    Phase::Asleep(summary) => {
                        self.backoff()?;
                        let summary = summary.clone();
                        *phase = Phase::Waking(summary.clone());
                        tokio::spawn(self.clone().wake(summary));
                    }
                    Phase::Removed => return Err(SlotError::Removed),
                    Phase::Waking(_) | Phase::FallingAsleep(_) => {}
                }
            }
            if changed.changed().await.is_err() {
                return Err(SlotError::Removed);
            }
        }
    }

    /// `now_ms` before which no open is tried (0: none pending).
    fn backoff_until_ms(&self) -> u64 {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .until_ms
    }

    fn backoff(&self) -> Result<(), SlotError> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        if failures.until_ms > now {
            return Err(SlotError::Failed {
                error: failures.error.clone(),
                retry_after: Duration::from_millis(failures.until_ms - now),
            });
        }
        Ok(())
    }

    /// Opens the group (a task of its own, so a caller that gives up does
    /// not leave it half open) and announces the outcome.
    async fn wake(self: Arc<Self>, summary: Arc<G::Summary>) {
        let opened = (self.opener)(summary.clone()).await;
        {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            match &opened {
                Ok(_) => *failures = Failures::default(),
                Err(err) => {
                    failures.count += 1;
                    let wait = FIRST_BACKOFF
                        .saturating_mul(1 << failures.count.min(6).saturating_sub(1))
                        .min(MAX_BACKOFF);
                    failures.until_ms = now_ms() + wait.as_millis() as u64;
                    failures.error = format!("{err:#}");
                }
            }
        }
        let orphan = {
            let mut phase = self.phase();
            match (matches!(*phase, Phase::Removed), opened) {
                // Removed while opening (`remove` waits for opens to end, so
                // only a bug gets here): close what was opened.
                (true, Ok(group)) => Some(group),
                (true, Err(_)) => None,
                (false, Ok(group)) => {
                    self.last_used_ms.store(now_ms(), Ordering::Relaxed);
                    *phase = Phase::Awake(group);
                    self.sweeper.woke(self.id, self.me.clone());
                    None
                }
                (false, Err(_)) => {
                    let retry_at = self.backoff_until_ms();
                    self.watch_timer(&summary, retry_at);
                    *phase = Phase::Asleep(summary);
                    None
                }
            }
        };
        self.announce();
        if let Some(group) = orphan {
            group.sleep().await;
        }
    }

    /// Puts the group to sleep if it is awake, nobody holds it, it was not
    /// used for `idle` (any `idle` when `force`d by the cap on awake
    /// groups) and it owes nothing outside itself. True when it fell asleep.
    pub async fn try_sleep(&self, idle: Duration) -> bool {
        let group = {
            let mut phase = self.phase();
            let Phase::Awake(group) = &*phase else {
                return false;
            };
            let now = now_ms();
            let last_used = self.last_used_ms.load(Ordering::Relaxed);
            if self.users.load(Ordering::SeqCst) > 0
                || now.saturating_sub(last_used) < idle.as_millis() as u64
                || !group.may_sleep(now)
            {
                return false;
            }
            let group = group.clone();
            *phase = Phase::FallingAsleep(group.clone());
            group
        };
        self.announce();
        let summary = Arc::new(group.sleep().await);
        {
            let mut phase = self.phase();
            self.sweeper.slept(self.id);
            if !matches!(*phase, Phase::Removed) {
                self.watch_timer(&summary, 0);
                *phase = Phase::Asleep(summary);
            }
        }
        self.announce();
        true
    }

    /// Wakes the group if it sleeps and one of its timers fell due; the
    /// woken group's own timer task fires it. True when it was woken.
    pub fn wake_if_due(self: &Arc<Self>, now_ms: u64) -> bool {
        let due = match &*self.phase() {
            Phase::Asleep(summary) => G::timer_due_ms(summary)
                .is_some_and(|due| due <= now_ms)
                .then(|| summary.clone()),
            _ => None,
        };
        let Some(summary) = due else {
            return false;
        };
        if self.backoff().is_ok() {
            let slot = self.clone();
            tokio::spawn(async move {
                if let Err(err) = slot.acquire().await {
                    tracing::warn!(error = %err, "waking a group for its timer failed");
                }
            });
        } else {
            // Failing to open: try again when the back-off ends.
            self.watch_timer(&summary, self.backoff_until_ms());
        }
        true
    }

    /// Removes the slot (its queue or stream is gone): waits for an open or
    /// a close in progress to end, and answers the group if it was awake,
    /// for the caller to close.
    pub async fn remove(&self) -> Option<Arc<G>> {
        loop {
            let mut changed = self.changed.subscribe();
            {
                let mut phase = self.phase();
                match std::mem::replace(&mut *phase, Phase::Removed) {
                    Phase::Awake(group) => {
                        self.sweeper.slept(self.id);
                        drop(phase);
                        self.announce();
                        return Some(group);
                    }
                    Phase::Asleep(_) | Phase::Removed => {
                        drop(phase);
                        self.announce();
                        return None;
                    }
                    busy @ (Phase::Waking(_) | Phase::FallingAsleep(_)) => *phase = busy,
                }
            }
            if changed.changed().await.is_err() {
                return None;
            }
        }
    }

    /// At shutdown: puts the group to sleep whoever holds it, or closes it
    /// when it owes something (a restart opens it then).
    pub async fn shut_down(&self) {
        let group = {
            let mut phase = self.phase();
            match std::mem::replace(&mut *phase, Phase::Removed) {
                Phase::Awake(group) => {
                    *phase = Phase::FallingAsleep(group.clone());
                    group
                }
                other => {
                    *phase = other;
                    return;
                }
            }
        };
        self.announce();
        self.sweeper.slept(self.id);
        let next = if group.may_sleep(now_ms()) {
            Phase::Asleep(Arc::new(group.sleep().await))
        } else {
            group.stop().await;
            Phase::Removed
        };
        *self.phase() = next;
        self.announce();
    }

    /// What the group is now, without waking it; a group being opened or
    /// closed reports its last known state.
    pub fn now(&self) -> Now<G> {
        match &*self.phase() {
            Phase::Awake(group) | Phase::FallingAsleep(group) => Now::Awake(group.clone()),
            Phase::Asleep(summary) | Phase::Waking(summary) => Now::Asleep(summary.clone()),
            Phase::Removed => Now::Removed,
        }
    }

    pub fn is_awake(&self) -> bool {
        matches!(*self.phase(), Phase::Awake(_))
    }

    /// When it was last handed out (or woken), on the command clock.
    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }

    /// Whether opening failed lately (health and metrics).
    pub fn failing(&self) -> Option<String> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        (failures.count > 0).then(|| failures.error.clone())
    }
}

/// A group in use: it does not fall asleep before every guard is dropped.
pub struct InUse<G: Hibernate> {
    group: Arc<G>,
    slot: Arc<Slot<G>>,
}

impl<G: Hibernate> InUse<G> {
    /// The group itself (for code that keeps it beyond the guard's scope
    /// without keeping it awake).
    pub fn group(&self) -> &Arc<G> {
        &self.group
    }

    /// Whether this guard is for `slot`.
    pub fn is_of(&self, slot: &Arc<Slot<G>>) -> bool {
        Arc::ptr_eq(&self.slot, slot)
    }
}

impl<G: Hibernate> Clone for InUse<G> {
    fn clone(&self) -> Self {
        self.slot.users.fetch_add(1, Ordering::SeqCst);
        InUse {
            group: self.group.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl<G: Hibernate> std::ops::Deref for InUse<G> {
    type Target = G;

    fn deref(&self) -> &G {
        &self.group
    }
}

impl<G: Hibernate> Drop for InUse<G> {
    fn drop(&mut self) {
        self.slot.last_used_ms.store(now_ms(), Ordering::Relaxed);
        self.slot.users.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A group that counts opens and closes.
    struct Probe {
        closed: AtomicBool,
        owes: AtomicBool,
    }

    impl Hibernate for Probe {
        type Summary = Option<u64>;

        fn may_sleep(&self, _now_ms: u64) -> bool {
            !self.owes.load(Ordering::SeqCst)
        }

        async fn sleep(&self) -> Option<u64> {
            self.closed.store(true, Ordering::SeqCst);
            None
        }

        async fn stop(&self) {
            self.closed.store(true, Ordering::SeqCst);
        }

        fn timer_due_ms(summary: &Option<u64>) -> Option<u64> {
            *summary
        }
    }

    fn slot(opens: Arc<AtomicUsize>, fail: bool) -> Arc<Slot<Probe>> {
        slot_watched_by(opens, fail, &Arc::default())
    }

    fn slot_watched_by(
        opens: Arc<AtomicUsize>,
        fail: bool,
        sweeper: &Arc<Sweeper<Probe>>,
    ) -> Arc<Slot<Probe>> {
        timed_slot(opens, fail, sweeper, None)
    }

    /// A sleeping slot whose summary says its timer falls due at `due_ms`.
    fn timed_slot(
        opens: Arc<AtomicUsize>,
        fail: bool,
        sweeper: &Arc<Sweeper<Probe>>,
        due_ms: Option<u64>,
    ) -> Arc<Slot<Probe>> {
        Slot::asleep(
            due_ms,
            Box::new(move |_summary| {
                let opens = opens.clone();
                Box::pin(async move {
                    opens.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if fail {
                        anyhow::bail!("Too many open files");
                    }
                    Ok(Arc::new(Probe {
                        closed: AtomicBool::new(false),
                        owes: AtomicBool::new(false),
                    }))
                })
            }),
            sweeper,
        )
    }

    #[tokio::test]
    async fn concurrent_users_wake_a_group_once_and_keep_it_awake() {
        let opens = Arc::new(AtomicUsize::new(0));
        let slot = slot(opens.clone(), false);
        let (a, b) = tokio::join!(slot.acquire(), slot.acquire());
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert_eq!(opens.load(Ordering::SeqCst), 1, "one open for both");
        assert!(Arc::ptr_eq(a.group(), b.group()));
        assert!(!slot.try_sleep(Duration::ZERO).await, "in use");
        drop(a);
        assert!(!slot.try_sleep(Duration::ZERO).await, "still in use");
        let group = b.group().clone();
        drop(b);
        assert!(
            !slot.try_sleep(Duration::from_secs(60)).await,
            "used a moment ago"
        );
        assert!(slot.try_sleep(Duration::ZERO).await);
        assert!(group.closed.load(Ordering::SeqCst));
        assert!(matches!(slot.now(), Now::Asleep(_)));
        let again = slot.acquire().await.expect("woken again");
        assert_eq!(opens.load(Ordering::SeqCst), 2);
        assert!(!Arc::ptr_eq(again.group(), &group));
    }

    #[tokio::test]
    async fn a_group_that_owes_something_stays_awake() {
        let slot = slot(Arc::new(AtomicUsize::new(0)), false);
        let group = slot.acquire().await.expect("open").group().clone();
        group.owes.store(true, Ordering::SeqCst);
        assert!(!slot.try_sleep(Duration::ZERO).await);
        group.owes.store(false, Ordering::SeqCst);
        assert!(slot.try_sleep(Duration::ZERO).await);
    }

    #[tokio::test]
    async fn a_failed_open_backs_off_instead_of_retrying_at_once() {
        let opens = Arc::new(AtomicUsize::new(0));
        let slot = slot(opens.clone(), true);
        let first = slot.acquire().await;
        assert!(
            matches!(first, Err(SlotError::Failed { .. })),
            "{:?}",
            first.err()
        );
        let second = slot.acquire().await;
        match second {
            Err(SlotError::Failed { error, retry_after }) => {
                assert!(error.contains("Too many open files"), "{error}");
                assert!(retry_after > Duration::ZERO && retry_after <= FIRST_BACKOFF);
            }
            other => panic!("expected a back-off, got {:?}", other.err()),
        }
        assert_eq!(
            opens.load(Ordering::SeqCst),
            1,
            "no second open inside the back-off"
        );
        assert!(slot.failing().is_some());
    }

    #[tokio::test]
    async fn removing_a_slot_hands_back_the_open_group_and_refuses_users() {
        let slot = slot(Arc::new(AtomicUsize::new(0)), false);
        drop(slot.acquire().await.expect("open"));
        assert!(slot.remove().await.is_some());
        assert!(matches!(slot.acquire().await, Err(SlotError::Removed)));
        assert!(slot.remove().await.is_none());
    }

    #[tokio::test]
    async fn a_sleeping_group_wakes_when_its_timer_falls_due() {
        let opens = Arc::new(AtomicUsize::new(0));
        let slot = slot(opens.clone(), false);
        assert!(!slot.wake_if_due(now_ms()), "no timer");
        {
            let mut phase = slot.phase();
            *phase = Phase::Asleep(Arc::new(Some(1_000)));
        }
        assert!(!slot.wake_if_due(999));
        assert!(slot.wake_if_due(1_000));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !slot.is_awake() {
            assert!(tokio::time::Instant::now() < deadline, "not woken");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(opens.load(Ordering::SeqCst), 1);
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_sweeper_sees_only_awake_slots_and_due_timers() {
        let sweeper: Arc<Sweeper<Probe>> = Arc::default();
        let opens = Arc::new(AtomicUsize::new(0));
        let idle = slot_watched_by(opens.clone(), false, &sweeper);
        let later = timed_slot(opens.clone(), false, &sweeper, Some(now_ms() + 3_600_000));
        let due = timed_slot(opens.clone(), false, &sweeper, Some(now_ms()));
        assert_eq!(
            sweeper.awake_count(),
            0,
            "sleeping slots are not watched as awake"
        );
        drop(idle.acquire().await.expect("open"));
        assert_eq!(sweeper.awake_count(), 1);

        let shutdown = tokio_util::sync::CancellationToken::new();
        let hibernation = super::super::sweeper::Hibernation {
            after: Duration::ZERO,
            max_awake: 10,
        };
        let task = tokio::spawn(sweeper.clone().run(hibernation, shutdown.clone()));
        // The due one is woken for its timer; the idle one falls asleep; the
        // one due in an hour is left alone.
        until("the due slot woke", || opens.load(Ordering::SeqCst) >= 2).await;
        until("the idle slot slept", || !idle.is_awake()).await;
        assert!(!later.is_awake());
        // Nobody uses the woken one either: it sleeps again on a later sweep.
        until("the woken slot slept again", || !due.is_awake()).await;
        assert_eq!(sweeper.awake_count(), 0);
        shutdown.cancel();
        task.await.expect("sweeper ends");
    }
}

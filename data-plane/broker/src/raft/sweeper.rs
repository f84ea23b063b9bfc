//! A host's sweeper: the one task that puts idle awake groups to sleep and
//! wakes sleeping groups whose timers fell due.
//!
//! It must cost nothing per sleeping group, since most hosted groups sleep:
//! slots tell the sweeper when they wake and fall asleep, so it keeps the
//! set of awake slots, and when a sleeping slot's next timer falls due, so
//! it keeps those in one queue ordered by due time. A tick looks at the
//! awake slots and at the timers that fell due, never at every slot.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::now_ms;
use super::slot::{Hibernate, Slot};

/// When hosted groups sleep.
#[derive(Debug, Clone, Copy)]
pub struct Hibernation {
    /// A group nobody used for this long sleeps.
    pub after: Duration,
    /// More awake groups than this: the least recently used sleep early.
    pub max_awake: usize,
}

/// How often the sweeper looks at the awake slots and the due timers.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Groups put to sleep at the same time.
const SLEEP_CONCURRENCY: usize = 8;

/// Tells slots apart in the sweeper's maps.
static NEXT_SLOT_ID: AtomicU64 = AtomicU64::new(1);

pub(super) fn next_slot_id() -> u64 {
    NEXT_SLOT_ID.fetch_add(1, Ordering::Relaxed)
}

struct Watched<G: Hibernate> {
    awake: HashMap<u64, Weak<Slot<G>>>,
    /// Sleeping slots by when their next timer falls due. An entry may be
    /// stale (the slot woke, or slept again with another timer): waking
    /// checks the slot's own summary, so a stale entry costs one look.
    timers: BTreeMap<(u64, u64), Weak<Slot<G>>>,
}

/// What one host's sweeper watches; shared by the host's slots.
pub struct Sweeper<G: Hibernate> {
    watched: Mutex<Watched<G>>,
}

impl<G: Hibernate> Default for Sweeper<G> {
    fn default() -> Self {
        Sweeper {
            watched: Mutex::new(Watched {
                awake: HashMap::new(),
                timers: BTreeMap::new(),
            }),
        }
    }
}

impl<G: Hibernate> Sweeper<G> {
    fn watched(&self) -> MutexGuard<'_, Watched<G>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn woke(&self, id: u64, slot: Weak<Slot<G>>) {
        self.watched().awake.insert(id, slot);
    }

    pub(super) fn slept(&self, id: u64) {
        self.watched().awake.remove(&id);
    }

    /// The sleeping slot must be woken at `due_ms`.
    pub(super) fn wake_at(&self, due_ms: u64, id: u64, slot: Weak<Slot<G>>) {
        self.watched().timers.insert((due_ms, id), slot);
    }

    /// How many slots are awake.
    pub fn awake_count(&self) -> usize {
        self.watched().awake.len()
    }

    /// The awake slots.
    fn awake(&self) -> Vec<Arc<Slot<G>>> {
        let mut watched = self.watched();
        watched.awake.retain(|_, slot| slot.strong_count() > 0);
        watched.awake.values().filter_map(Weak::upgrade).collect()
    }

    /// The sleeping slots whose timers are due at `now`, taken off the queue.
    fn due(&self, now: u64) -> Vec<Arc<Slot<G>>> {
        let mut watched = self.watched();
        let later = watched.timers.split_off(&(now.saturating_add(1), 0));
        let due = std::mem::replace(&mut watched.timers, later);
        due.into_values()
            .filter_map(|slot| slot.upgrade())
            .collect()
    }

    /// Every [`SWEEP_EVERY`], wakes the sleeping groups whose timers fell
    /// due and puts to sleep the awake ones nobody used for
    /// `hibernation.after` — and, beyond `hibernation.max_awake` awake
    /// groups, the least recently used ones that may sleep, however
    /// recently used.
    pub async fn run(
        self: Arc<Self>,
        hibernation: Hibernation,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        use futures_util::StreamExt;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            let now = now_ms();
            for slot in self.due(now) {
                slot.wake_if_due(now);
            }
            let mut awake = self.awake();
            awake.sort_by_key(|slot| slot.last_used_ms());
            let over = awake.len().saturating_sub(hibernation.max_awake);
            let candidates = awake.into_iter().enumerate().map(|(rank, slot)| {
                let idle = if rank < over {
                    Duration::ZERO
                } else {
                    hibernation.after
                };
                (slot, idle)
            });
            futures_util::stream::iter(candidates)
                .for_each_concurrent(SLEEP_CONCURRENCY, |(slot, idle)| async move {
                    slot.try_sleep(idle).await;
                })
                .await;
        }
    }
}

/// At shutdown: every slot's group asleep (or closed, when it owes
/// something), a few at a time.
pub async fn shut_down_all<G: Hibernate>(slots: Vec<Arc<Slot<G>>>) {
    use futures_util::StreamExt;
    futures_util::stream::iter(slots)
        .for_each_concurrent(SLEEP_CONCURRENCY, |slot| async move {
            slot.shut_down().await;
        })
        .await;
}

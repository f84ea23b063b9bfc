//! How far the live brokers have converged, for the declares that wait on it.
//!
//! A declare answers once every live broker has applied its version. Each
//! waiting request polling the `nodes` table would cost a query per request
//! per poll — hundreds a second when many declares are in flight — so one
//! task per process polls while anybody waits and publishes the answer to
//! all of them. Brokers heartbeat a new applied version at once, so the
//! poll interval is the only delay this adds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Notify, watch};

use crate::db;

/// How often the table is read while a request waits.
const POLL: Duration = Duration::from_millis(5);

/// The live brokers' convergence as last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Convergence {
    /// Counts readings, so a waiter can tell one taken after it began.
    pub reading: u64,
    pub live: i64,
    /// The lowest version a live broker has applied (`None`: none is live).
    pub lowest: Option<i64>,
}

impl Convergence {
    /// Whether a change at `version` is in effect everywhere (at once with no live broker).
    pub fn has_applied(&self, version: i64) -> bool {
        self.live == 0 || self.lowest.is_some_and(|v| v >= version)
    }
}

#[derive(Clone)]
pub struct AppliedWatch {
    shared: Arc<Shared>,
    receiver: watch::Receiver<Option<Convergence>>,
}

struct Shared {
    waiting: AtomicUsize,
    wake: Notify,
}

/// Counts a waiter for as long as it lives, so the poller runs while anybody waits.
struct Waiting<'a>(&'a Shared);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AppliedWatch {
    /// Starts the poller; it ends when every `AppliedWatch` clone is dropped.
    pub fn start(pool: PgPool) -> AppliedWatch {
        let shared = Arc::new(Shared {
            waiting: AtomicUsize::new(0),
            wake: Notify::new(),
        });
        let (sender, receiver) = watch::channel(None);
        tokio::spawn(poll(pool, Arc::downgrade(&shared), sender));
        AppliedWatch { shared, receiver }
    }

    /// Waits until every live broker has applied `version`, or `timeout`
    /// passes; returns whether they have.
    pub async fn wait_applied(&self, version: i64, timeout: Duration) -> bool {
        self.shared.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.shared);
        self.shared.wake.notify_one();
        let mut receiver = self.receiver.clone();
        // Only readings taken after this request began count: an older one
        // may predate a broker that has since registered.
        let last = receiver.borrow().map_or(0, |c| c.reading);
        let done = tokio::time::timeout(
            timeout,
            receiver.wait_for(|c| c.is_some_and(|c| c.reading > last && c.has_applied(version))),
        )
        .await;
        matches!(done, Ok(Ok(_)))
    }
}

async fn poll(
    pool: PgPool,
    shared: std::sync::Weak<Shared>,
    sender: watch::Sender<Option<Convergence>>,
) {
    let mut reading = 0;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if strong.waiting.load(Ordering::Acquire) == 0 {
            // Wait for a waiter, but look again now and then so that a
            // dropped watch ends this task.
            let _ = tokio::time::timeout(Duration::from_secs(1), strong.wake.notified()).await;
            continue;
        }
        drop(strong);
        match db::nodes::convergence(&pool).await {
            Ok((live, lowest)) => {
                reading += 1;
                sender.send_replace(Some(Convergence {
                    reading,
                    live,
                    lowest,
                }));
            }
            Err(err) => tracing::warn!(error = %err, "reading broker convergence failed"),
        }
        tokio::time::sleep(POLL).await;
    }
}

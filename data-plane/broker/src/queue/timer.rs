//! A group's timer task: while this node leads the group it proposes `Tick`
//! when `next_timer_ms()` falls due, so leases expire, delayed messages
//! become ready and TTLs run out without waiting for other traffic.

use std::sync::Arc;
use std::time::Duration;

use sluice_queue::Command;
use tokio_util::sync::CancellationToken;

use super::group::{QueueGroup, now_ms};

/// Most time between two looks at the state (leadership may change).
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Least time between two ticks, so a timer that does not clear cannot spin.
const MIN_TICK_GAP: Duration = Duration::from_millis(20);

pub(super) async fn run(group: Arc<QueueGroup>, stop: CancellationToken) {
    let mut applied = group.view().subscribe();
    loop {
        let now = now_ms();
        let due = group.view().read(|q| q.next_timer_ms());
        let wait = match due {
            Some(due) if due <= now && group.is_leader() => {
                if let Err(err) = group.propose(Command::Tick, Vec::new()).await {
                    tracing::debug!(group = %group.spec.group_id, error = %err, "tick failed");
                }
                MIN_TICK_GAP
            }
            Some(due) if due > now => Duration::from_millis(due - now).min(IDLE_CHECK),
            _ => IDLE_CHECK,
        };
        applied.borrow_and_update();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            changed = applied.changed(), if wait > MIN_TICK_GAP => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

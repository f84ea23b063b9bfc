//! One task follows the topology feed and owns the broker's topology: it
//! long-polls the control plane and swaps in each new snapshot. A second task
//! heartbeats the version applied — which the group manager reports once its
//! groups have converged to that version, not when the snapshot arrives — so
//! the control plane answers a declare only when the queue can take messages.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::client::{ControlClient, ControlError};
use crate::topology::Topology;

/// Read access to the latest topology, for request handlers.
#[derive(Clone)]
pub struct TopologyHandle {
    receiver: watch::Receiver<Arc<Topology>>,
}

impl TopologyHandle {
    pub fn current(&self) -> Arc<Topology> {
        self.receiver.borrow().clone()
    }

    /// Whether a first snapshot has arrived (the broker is not ready before).
    pub fn is_loaded(&self) -> bool {
        self.receiver.borrow().version >= 0
    }

    /// A receiver that changes with every new snapshot (the group manager's input).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Topology>> {
        self.receiver.clone()
    }

    /// A topology that never changes, without a control plane (tests).
    #[cfg(test)]
    pub(crate) fn fixed(topology: Topology) -> TopologyHandle {
        let (_, receiver) = watch::channel(Arc::new(topology));
        TopologyHandle { receiver }
    }

    /// Waits until the topology reaches `version` (tests and readiness).
    pub async fn wait_for_version(&self, version: i64) {
        let mut receiver = self.receiver.clone();
        let _ = receiver.wait_for(|t| t.version >= version).await;
    }
}

/// Who this node is, as registered with the control plane.
#[derive(Clone)]
pub struct NodeIdentity {
    pub node_id: String,
    pub data_url: String,
    pub zone: String,
}

pub struct Follower;

const FEED_WAIT: Duration = Duration::from_secs(25);
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Follower {
    /// Starts the feed and heartbeat tasks; both stop when `shutdown` is
    /// cancelled. The heartbeats report what `applied` says.
    pub fn start(
        client: ControlClient,
        node: NodeIdentity,
        heartbeat: Duration,
        applied: watch::Receiver<i64>,
        shutdown: CancellationToken,
    ) -> (TopologyHandle, Vec<JoinHandle<()>>) {
        let (sender, receiver) = watch::channel(Arc::new(Topology::default()));
        let feed = tokio::spawn(follow_feed(
            client.clone(),
            node.clone(),
            sender,
            shutdown.clone(),
        ));
        let beats = tokio::spawn(send_heartbeats(client, node, heartbeat, applied, shutdown));
        (TopologyHandle { receiver }, vec![feed, beats])
    }
}

async fn follow_feed(
    client: ControlClient,
    node: NodeIdentity,
    sender: watch::Sender<Arc<Topology>>,
    shutdown: CancellationToken,
) {
    let mut backoff = RETRY_MIN;
    loop {
        let registered = tokio::select! {
            r = client.register(&node.node_id, &node.data_url, &node.zone) => r,
            _ = shutdown.cancelled() => return,
        };
        match registered {
            Ok(()) => break,
            Err(err) => {
                tracing::warn!(error = %err, "registering with the control plane failed; retrying");
                if sleep_or_shutdown(&mut backoff, &shutdown).await {
                    return;
                }
            }
        }
    }
    tracing::info!(node = %node.node_id, "registered with the control plane");
    // -1 so that even a fresh control plane (version 0) answers with a snapshot.
    let mut since = -1;
    backoff = RETRY_MIN;
    loop {
        let polled = tokio::select! {
            r = client.feed(since, FEED_WAIT) => r,
            _ = shutdown.cancelled() => return,
        };
        match polled {
            Ok(Some(snapshot)) => {
                backoff = RETRY_MIN;
                since = snapshot.version;
                let topology = Topology::from_snapshot(snapshot);
                tracing::debug!(
                    version = since,
                    groups = topology.groups_on(&node.node_id).len(),
                    "topology received"
                );
                sender.send_replace(Arc::new(topology));
            }
            Ok(None) => backoff = RETRY_MIN,
            Err(err) => {
                tracing::warn!(error = %err, "topology feed failed; retrying");
                if sleep_or_shutdown(&mut backoff, &shutdown).await {
                    return;
                }
            }
        }
    }
}

async fn send_heartbeats(
    client: ControlClient,
    node: NodeIdentity,
    every: Duration,
    mut applied: watch::Receiver<i64>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    loop {
        // A fresh apply is reported at once, not at the next tick, so declares return quickly.
        tokio::select! {
            _ = ticker.tick() => {}
            changed = applied.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        let version = *applied.borrow_and_update();
        match client.heartbeat(&node.node_id, version).await {
            Ok(_) => {}
            Err(ControlError::UnknownNode) => {
                if let Err(err) = client
                    .register(&node.node_id, &node.data_url, &node.zone)
                    .await
                {
                    tracing::warn!(error = %err, "re-registering failed");
                }
            }
            Err(err) => tracing::warn!(error = %err, "heartbeat failed"),
        }
    }
}

/// Sleeps the backoff (doubling it); true when shutdown came first.
async fn sleep_or_shutdown(backoff: &mut Duration, shutdown: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(RETRY_MAX);
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = shutdown.cancelled() => true,
    }
}

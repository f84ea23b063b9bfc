//! One task follows the topology feed and owns the broker's topology: it
//! long-polls the control plane and swaps in each new snapshot. A second task
//! heartbeats the version applied — which the group manager reports once its
//! groups have converged to that version, not when the snapshot arrives — so
//! the control plane answers a declare only when the queue can take messages.
//! Each heartbeat's answer also says how many brokers are live, which the
//! publish rate quotas are divided by (`limits.rs`), and, per tenant, the
//! bytes stored across the live brokers, which the storage quota is checked
//! against; each heartbeat carries this broker's own per-tenant bytes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use sluice_protocol::FeedUpdate;
use sluice_protocol::node::RegisterNode;

use super::client::{ControlClient, ControlError};
use crate::control::topology::Topology;

/// Read access to the latest topology (and the live broker count), for
/// request handlers.
#[derive(Clone)]
pub struct TopologyHandle {
    receiver: watch::Receiver<Arc<Topology>>,
    /// Live brokers as the last heartbeat answer counted them (`None` before
    /// one came, or from a control plane that does not count them).
    live_brokers: watch::Receiver<Option<u64>>,
    /// Per tenant, the bytes stored on the live brokers, as the last
    /// heartbeat answer summed them.
    storage_used: watch::Receiver<Arc<BTreeMap<i64, u64>>>,
}

/// Per tenant, the bytes this broker stores (queue messages, partition logs).
pub type StorageReport = Arc<BTreeMap<i64, u64>>;

impl TopologyHandle {
    pub fn current(&self) -> Arc<Topology> {
        self.receiver.borrow().clone()
    }

    /// How many brokers share the tenants' publish rate quotas, at least 1:
    /// the live count from the last heartbeat answer. Until one came (or if
    /// the control plane does not send it) every broker the feed lists,
    /// which may count stopped ones but never lets a tenant exceed its rate.
    /// A broker cut off from the control plane keeps the last count.
    pub fn live_brokers(&self) -> u64 {
        let counted = *self.live_brokers.borrow();
        counted
            .unwrap_or_else(|| self.receiver.borrow().nodes.len() as u64)
            .max(1)
    }

    /// The bytes `tenant_id` stores across the live brokers, as of the last
    /// heartbeat answer (0 before one came).
    pub fn storage_used(&self, tenant_id: i64) -> u64 {
        self.storage_used
            .borrow()
            .get(&tenant_id)
            .copied()
            .unwrap_or(0)
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
        let (_, live_brokers) = watch::channel(None);
        let (_, storage_used) = watch::channel(Arc::default());
        TopologyHandle {
            receiver,
            live_brokers,
            storage_used,
        }
    }

    /// Waits until the topology reaches `version` (tests and readiness).
    pub async fn wait_for_version(&self, version: i64) {
        let mut receiver = self.receiver.clone();
        let _ = receiver.wait_for(|t| t.version >= version).await;
    }
}

/// Who this node is and what it can host, as registered with the control plane.
#[derive(Clone)]
pub struct NodeIdentity {
    pub node_id: String,
    pub data_url: String,
    pub zone: String,
    /// The most groups it hosts (`None`: no limit).
    pub max_groups: Option<u64>,
    /// Where its groups live: the free bytes there go with each heartbeat.
    pub data_dir: std::path::PathBuf,
    /// Free bytes it keeps there.
    pub disk_reserve_bytes: u64,
}

impl NodeIdentity {
    fn registration(&self) -> RegisterNode {
        RegisterNode {
            data_url: self.data_url.clone(),
            zone: self.zone.clone(),
            max_groups: self.max_groups,
            disk_reserve_bytes: self.disk_reserve_bytes,
        }
    }

    /// Free bytes under the data directory now (`None`, logged, when they
    /// cannot be measured: the control plane then places by count alone).
    async fn disk_free_bytes(&self) -> Option<u64> {
        // The directory is made when the first group opens: until then the
        // disk is the one under its nearest existing ancestor.
        let dir = self.data_dir.clone();
        let measure = move || {
            let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(&dir);
            sluice_storage::disk::free_bytes(existing)
        };
        match tokio::task::spawn_blocking(measure).await {
            Ok(Ok(free)) => Some(free),
            Ok(Err(err)) => {
                tracing::warn!(dir = %self.data_dir.display(), error = %err, "measuring free disk space failed");
                None
            }
            Err(_) => None,
        }
    }
}

pub struct Follower;

const FEED_WAIT: Duration = Duration::from_secs(25);
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Follower {
    /// Starts the feed and heartbeat tasks; both stop when `shutdown` is
    /// cancelled. The heartbeats report what `applied` says, and the
    /// storage `report` (which the broker fills once its groups exist).
    pub fn start(
        client: ControlClient,
        node: NodeIdentity,
        heartbeat: Duration,
        applied: watch::Receiver<i64>,
        report: watch::Receiver<StorageReport>,
        shutdown: CancellationToken,
    ) -> (TopologyHandle, Vec<JoinHandle<()>>) {
        let (sender, receiver) = watch::channel(Arc::new(Topology::default()));
        let feed = tokio::spawn(follow_feed(
            client.clone(),
            node.clone(),
            sender,
            shutdown.clone(),
        ));
        let (live_sender, live_brokers) = watch::channel(None);
        let (storage_sender, storage_used) = watch::channel(Arc::default());
        let beats = tokio::spawn(send_heartbeats(
            client,
            node,
            heartbeat,
            applied,
            report,
            HeartbeatAnswers {
                live_brokers: live_sender,
                storage_used: storage_sender,
            },
            shutdown,
        ));
        let handle = TopologyHandle {
            receiver,
            live_brokers,
            storage_used,
        };
        (handle, vec![feed, beats])
    }
}

async fn follow_feed(
    client: ControlClient,
    node: NodeIdentity,
    sender: watch::Sender<Arc<Topology>>,
    shutdown: CancellationToken,
) {
    let mut backoff = RETRY_MIN;
    let registration = node.registration();
    loop {
        let registered = tokio::select! {
            r = client.register(&node.node_id, &registration) => r,
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
            Ok(Some(FeedUpdate::Snapshot(snapshot))) => {
                backoff = RETRY_MIN;
                since = snapshot.version;
                let topology = Topology::from_snapshot(snapshot);
                // Info: when a declare or a new key seems late, the log shows when it arrived.
                tracing::info!(
                    version = since,
                    groups = topology.groups_on(&node.node_id).len(),
                    "topology snapshot received"
                );
                sender.send_replace(Arc::new(topology));
            }
            Ok(Some(FeedUpdate::Changes(changes))) => {
                backoff = RETRY_MIN;
                let version = changes.version;
                let (queues, streams) = (changes.queues.len(), changes.streams.len());
                let applied = sender.borrow().with_changes(changes);
                match applied {
                    Ok(topology) => {
                        since = version;
                        // Debug, not info: at hundreds of declares a second this is per declare.
                        tracing::debug!(version, queues, streams, "topology changes received");
                        sender.send_replace(Arc::new(topology));
                    }
                    Err(err) => {
                        // Never guess: start over from a whole snapshot.
                        tracing::warn!(error = %err, "topology changes do not fit; asking for a snapshot");
                        since = -1;
                    }
                }
            }
            Ok(None) => backoff = RETRY_MIN,
            Err(ControlError::UnreadableSnapshot(err)) => {
                // Keep the topology we have and do not report the new version
                // as applied: the control plane shows this broker as not
                // converging. The same version would read the same way, so
                // wait for a newer one rather than asking again.
                tracing::error!(
                    keeping_version = sender.borrow().version,
                    error = %err,
                    "topology snapshot unreadable; not applied"
                );
                if let Some(version) = err.version.filter(|v| *v > since) {
                    since = version;
                } else if sleep_or_shutdown(&mut backoff, &shutdown).await {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "topology feed failed; retrying");
                if sleep_or_shutdown(&mut backoff, &shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Where the heartbeat task puts what the answers say.
struct HeartbeatAnswers {
    live_brokers: watch::Sender<Option<u64>>,
    storage_used: watch::Sender<StorageReport>,
}

async fn send_heartbeats(
    client: ControlClient,
    node: NodeIdentity,
    every: Duration,
    mut applied: watch::Receiver<i64>,
    report: watch::Receiver<StorageReport>,
    answers: HeartbeatAnswers,
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
        let storage = report.borrow().clone();
        let disk_free = node.disk_free_bytes().await;
        match client
            .heartbeat(&node.node_id, version, &storage, disk_free)
            .await
        {
            Ok(ack) => {
                if let Some(used) = ack.storage_used {
                    answers.storage_used.send_replace(Arc::new(used));
                }
                if let Some(live) = ack.live_nodes {
                    answers.live_brokers.send_if_modified(|known| {
                        let changed = *known != Some(live);
                        *known = Some(live);
                        changed
                    });
                }
            }
            Err(ControlError::UnknownNode) => {
                if let Err(err) = client.register(&node.node_id, &node.registration()).await {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn live_brokers_come_from_heartbeats_else_from_the_feed() {
        let (topology, receiver) = watch::channel(Arc::new(Topology::default()));
        let (counted, live_brokers) = watch::channel(None);
        let (_, storage_used) = watch::channel(Arc::default());
        let handle = TopologyHandle {
            receiver,
            live_brokers,
            storage_used,
        };
        assert_eq!(handle.live_brokers(), 1, "nothing known: this broker alone");
        let nodes: imbl::HashMap<String, String> = ["n1", "n2", "n3"]
            .into_iter()
            .map(|n| (n.to_string(), format!("http://{n}")))
            .collect();
        topology.send_replace(Arc::new(Topology {
            nodes,
            ..Topology::default()
        }));
        assert_eq!(
            handle.live_brokers(),
            3,
            "before a heartbeat answer: every broker the feed lists"
        );
        counted.send_replace(Some(2));
        assert_eq!(handle.live_brokers(), 2, "the control plane's live count");
        counted.send_replace(Some(0));
        assert_eq!(handle.live_brokers(), 1, "never below one");
    }

    /// A control plane that serves a readable snapshot at version 1, then
    /// changes to version 2 whose queue has an `overflow` no broker knows,
    /// then nothing; it records the `since` of every feed request.
    async fn control_plane(asked: Arc<std::sync::Mutex<Vec<i64>>>) -> String {
        use axum::extract::{Query, State};
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use axum::routing::{get, post, put};

        fn snapshot(version: i64, overflow: &str) -> serde_json::Value {
            serde_json::json!({
                "version": version, "tenants": [], "api_keys": [], "exchanges": [],
                "bindings": [], "streams": [], "nodes": [],
                "queues": [{"tenant_id": 1, "name": "jobs", "spec": {"overflow": overflow},
                            "placement": {"group_id": "q1", "replicas": ["elsewhere"]}}]
            })
        }
        async fn feed(
            State(asked): State<Arc<std::sync::Mutex<Vec<i64>>>>,
            Query(query): Query<HashMap<String, String>>,
        ) -> axum::response::Response {
            assert_eq!(query.get("changes").map(String::as_str), Some("true"));
            let since = query
                .get("since")
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1);
            asked.lock().expect("lock").push(since);
            match since {
                -1 => axum::Json(serde_json::json!({"snapshot": snapshot(1, "drop-head")}))
                    .into_response(),
                1 => axum::Json(serde_json::json!({"changes": {
                    "since": 1, "version": 2,
                    "queues": snapshot(2, "drop-tail")["queues"], "queues_removed": [],
                    "streams": [], "streams_removed": [], "api_keys": [], "api_keys_removed": [],
                    "routing": []
                }}))
                .into_response(),
                _ => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        }
        let app = axum::Router::new()
            .route(
                "/internal/v1/nodes/n1",
                put(|| async { axum::Json(serde_json::json!({})) }),
            )
            .route(
                "/internal/v1/nodes/n1/heartbeat",
                post(|| async { axum::Json(serde_json::json!({"version": 2})) }),
            )
            .route("/internal/v1/feed", get(feed))
            .with_state(asked);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn an_unreadable_snapshot_is_not_applied_and_the_previous_one_kept() {
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let base = control_plane(asked.clone()).await;
        let client = ControlClient::new(&base, "node-key").expect("client");
        let node = NodeIdentity {
            node_id: "n1".into(),
            data_url: "http://127.0.0.1:1".into(),
            zone: "default".into(),
            max_groups: None,
            data_dir: std::env::temp_dir(),
            disk_reserve_bytes: 0,
        };
        let (_applied_sender, applied) = watch::channel(-1);
        let (_report_sender, report) = watch::channel(StorageReport::default());
        let shutdown = CancellationToken::new();
        let (handle, tasks) = Follower::start(
            client,
            node,
            Duration::from_secs(3600),
            applied,
            report,
            shutdown.clone(),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Version 2 was fetched and refused once the feed is asked past it.
        while !asked.lock().expect("lock").contains(&2) {
            assert!(std::time::Instant::now() < deadline, "asked {asked:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let topology = handle.current();
        assert_eq!(topology.version, 1, "the readable snapshot is kept");
        let queue = topology.queues.get(&(1, "jobs".to_string())).expect("jobs");
        assert_eq!(queue.spec.overflow, sluice_queue::Overflow::DropHead);
        assert_eq!(
            asked
                .lock()
                .expect("lock")
                .iter()
                .filter(|s| **s == 1)
                .count(),
            1,
            "the unreadable version is not asked for again"
        );
        shutdown.cancel();
        for task in tasks {
            let _ = task.await;
        }
    }
}

//! The broker node: everything one broker process holds (its picture of the
//! topology, the queues and stream partitions it hosts, admission state, its
//! way to the other brokers), how it starts, and the tasks that run until
//! shutdown. Front ends (HTTP today) are handed a [`Node`] and call into the
//! rooms it holds; the node knows nothing of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::admission::auth::Jwks;
use crate::admission::rate::{PublishLimits, RateRefusals};
use crate::admission::waiting::TenantWaiters;
use crate::cluster::{NodeKey, Peers};
use crate::config::Config;
use crate::control::follower::NodeIdentity;
use crate::control::{ControlClient, Follower, TopologyHandle};
use crate::queue::activity::TenantActivity;
use crate::queue::dead_letter::DeadLetterForwarder;
use crate::queue::dispatch::Dispatchers;
use crate::queue::host::{QueueHost, QueueHostManager};
use crate::queue::receipts::ReceiptSeal;
use crate::queue::routers::Routers;
use crate::stream::host::{PartitionHost, PartitionHostManager};

/// One broker's state, shared (cheaply cloned) by every front end.
#[derive(Clone)]
pub struct Node {
    pub node_id: String,
    pub topology: TopologyHandle,
    pub jwks: Arc<Jwks>,
    /// The queue groups hosted here.
    pub queues: QueueHost,
    /// The stream partitions hosted here.
    pub partitions: PartitionHost,
    /// One compiled exchange router per tenant.
    pub routers: Arc<Routers>,
    /// Per-tenant publish rate buckets.
    pub limits: Arc<PublishLimits>,
    /// Publishes refused by the rate quota, per tenant (for `/metrics`).
    pub rate_refusals: Arc<RateRefusals>,
    /// What the queues hosted here did, per tenant (for `/metrics`).
    pub activity: Arc<TenantActivity>,
    /// The node key every broker shares: proves broker-to-broker calls.
    pub node_key: NodeKey,
    /// The push dispatch task of every queue with push consumers.
    pub dispatchers: Arc<Dispatchers>,
    /// Seals the receipts handed to consumers and opens those coming back.
    pub receipts: ReceiptSeal,
    /// Calls to the other brokers.
    pub peers: Peers,
    /// Long-polls and push streams each tenant holds open here.
    pub waiters: Arc<TenantWaiters>,
}

impl Node {
    /// Starts the node's tasks: following the control plane, converging the
    /// hosted queues and partitions, republishing dead letters and measuring
    /// storage. They run until `shutdown` is cancelled; await the handles
    /// to know they stopped.
    pub fn start(
        config: &Config,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Node, Vec<JoinHandle<()>>)> {
        let client = ControlClient::new(&config.control_url, &config.node_key)?;
        let identity = NodeIdentity {
            node_id: config.node_id.clone(),
            data_url: config.advertise_url(),
            zone: config.zone.clone(),
            max_groups: (config.max_groups > 0).then_some(config.max_groups),
            data_dir: config.data_dir.clone(),
            disk_reserve_bytes: config.disk_reserve_bytes,
        };
        let (applied, applied_receiver) = watch::channel(0);
        let (storage_report, storage_report_receiver) = watch::channel(Arc::default());
        let (topology, mut tasks) = Follower::start(
            client.clone(),
            identity,
            Duration::from_millis(config.heartbeat_ms),
            applied_receiver,
            storage_report_receiver,
            shutdown.clone(),
        );
        let (dead_letters, dead_letter_notes) = mpsc::unbounded_channel();
        let dead_letters_retry = dead_letters.clone();
        let activity = Arc::new(TenantActivity::default());
        // The version is applied once both the queue and the stream hosts
        // converged to it: report the lower of the two.
        let (queues_applied, queues_version) = watch::channel(-1);
        let (streams_applied, streams_version) = watch::channel(-1);
        let (queues, queue_manager) = QueueHostManager::start(
            config.node_id.clone(),
            &config.data_dir,
            topology.clone(),
            queues_applied,
            dead_letters,
            activity.clone(),
            config.hibernation(),
            shutdown.clone(),
        );
        tasks.push(queue_manager);
        let (partitions, partition_manager) = PartitionHostManager::start(
            config.node_id.clone(),
            &config.data_dir,
            config.stream_segment_bytes,
            topology.clone(),
            streams_applied,
            config.hibernation(),
            shutdown.clone(),
        );
        tasks.push(partition_manager);
        tasks.push(tokio::spawn(keep_measuring(
            queues.clone(),
            partitions.clone(),
            storage_report,
            Duration::from_millis(config.heartbeat_ms),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(report_applied(
            queues_version,
            streams_version,
            applied,
        )));
        let node_key = NodeKey::new(&config.node_key);
        let routers = Arc::new(Routers::default());
        let peers = Peers::new(config.node_id.clone(), node_key.clone(), topology.clone());
        let forwarder = DeadLetterForwarder {
            queues: queues.clone(),
            topology: topology.clone(),
            routers: routers.clone(),
            peers: peers.clone(),
        };
        tasks.push(tokio::spawn(forwarder.run(
            dead_letter_notes,
            dead_letters_retry,
            shutdown.clone(),
        )));
        let receipts = ReceiptSeal::new(&config.node_key);
        let node = Node {
            node_id: config.node_id.clone(),
            topology,
            jwks: Arc::new(Jwks::new(client)),
            queues,
            partitions,
            routers,
            limits: Arc::new(PublishLimits::default()),
            rate_refusals: Arc::new(RateRefusals::default()),
            activity,
            node_key,
            dispatchers: Arc::new(Dispatchers::new(receipts.clone())),
            receipts,
            peers,
            waiters: TenantWaiters::new(config.max_waiting_per_tenant),
        };
        Ok((node, tasks))
    }

    /// The quota state publishes and produces are admitted against.
    pub fn admission(&self) -> Admission<'_> {
        Admission {
            topology: &self.topology,
            limits: &self.limits,
            refusals: &self.rate_refusals,
        }
    }

    /// Why the node cannot serve yet, if it cannot: before the first
    /// topology snapshot every credential would be refused, and before the
    /// hosts converged to it hosted queues would answer 503.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.topology.is_loaded() {
            Some("no topology from the control plane yet")
        } else if self.queues.version() < 0 {
            Some("queue groups are still opening")
        } else if self.partitions.version() < 0 {
            Some("stream partitions are still opening")
        } else {
            None
        }
    }
}

/// Reports a topology version as applied once both hosts converged to it.
async fn report_applied(
    mut queues_version: watch::Receiver<i64>,
    mut streams_version: watch::Receiver<i64>,
    applied: watch::Sender<i64>,
) {
    loop {
        let both = (*queues_version.borrow_and_update()).min(*streams_version.borrow_and_update());
        if both >= 0 {
            applied.send_replace(both);
        }
        tokio::select! {
            changed = queues_version.changed() => if changed.is_err() { break },
            changed = streams_version.changed() => if changed.is_err() { break },
        }
    }
}

/// What this broker stores per tenant, now: live queue message bytes and
/// live produced batches. Blocking: it may read stream logs' indexes.
pub fn stored_bytes(queues: &QueueHost, partitions: &PartitionHost) -> BTreeMap<i64, u64> {
    let mut bytes = queues.stored_bytes();
    for (tenant, stored) in partitions.stored_bytes() {
        *bytes.entry(tenant).or_default() += stored;
    }
    bytes
}

/// Refreshes `report` (sent with every heartbeat) with [`stored_bytes`]
/// every `every` until `shutdown`.
async fn keep_measuring(
    queues: QueueHost,
    partitions: PartitionHost,
    report: watch::Sender<Arc<BTreeMap<i64, u64>>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let (q, p) = (queues.clone(), partitions.clone());
        match tokio::task::spawn_blocking(move || stored_bytes(&q, &p)).await {
            Ok(measured) => {
                report.send_replace(Arc::new(measured));
            }
            Err(err) => tracing::warn!(error = %err, "measuring storage failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

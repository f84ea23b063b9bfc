//! `sluice-broker`, the data plane: it registers with the control plane,
//! follows its topology feed (tenants, key verifiers, exchanges, queues,
//! bindings, streams and placements), authenticates tenants offline, and
//! serves the data API. Every queue placed on this node is an openraft group
//! on the segment log of `sluice-storage` ([`queue`], [`raft`]), converged to
//! the topology by the [`groups`] manager; every stream partition placed
//! here likewise ([`stream`], converged by [`stream_groups`]).

pub mod api;
pub mod auth;
pub mod config;
pub mod control;
pub mod convergence;
pub mod dead_letter;
pub mod error;
pub mod groups;
pub mod limits;
pub mod metrics;
pub mod peers;
pub mod queue;
pub mod raft;
pub mod routers;
pub mod storage_quota;
pub mod stream;
pub mod stream_groups;
pub mod topology;

use std::sync::Arc;

use sha2::Digest;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::api::BrokerState;
use crate::config::Config;
use crate::control::follower::NodeIdentity;
use crate::control::{ControlClient, Follower};
use crate::dead_letter::DeadLetterForwarder;
use crate::groups::GroupManager;
use crate::routers::Routers;
use crate::stream_groups::StreamGroupManager;

/// Runs the broker until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Installed before anything is counted: counts made before are lost.
    metrics::handle();
    let client = ControlClient::new(&config.control_url, &config.node_key)?;
    let node = NodeIdentity {
        node_id: config.node_id.clone(),
        data_url: config.advertise_url(),
        zone: config.zone.clone(),
    };
    let (applied, applied_receiver) = watch::channel(0);
    let (storage_report, storage_report_receiver) = watch::channel(Arc::default());
    let (topology, mut tasks) = Follower::start(
        client.clone(),
        node,
        Duration::from_millis(config.heartbeat_ms),
        applied_receiver,
        storage_report_receiver,
        shutdown.clone(),
    );
    let (dead_letters, dead_letter_notes) = mpsc::unbounded_channel();
    let dead_letters_retry = dead_letters.clone();
    // The version is applied once both the queue and the stream managers
    // converged to it: report the lower of the two.
    let (queues_applied, mut queues_version) = watch::channel(-1);
    let (streams_applied, mut streams_version) = watch::channel(-1);
    let (groups, manager) = GroupManager::start(
        config.node_id.clone(),
        &config.data_dir,
        topology.clone(),
        queues_applied,
        dead_letters,
        shutdown.clone(),
    );
    tasks.push(manager);
    let (partitions, stream_manager) = StreamGroupManager::start(
        config.node_id.clone(),
        &config.data_dir,
        config.stream_segment_bytes,
        topology.clone(),
        streams_applied,
        shutdown.clone(),
    );
    tasks.push(stream_manager);
    tasks.push(tokio::spawn(storage_quota::keep_measuring(
        groups.clone(),
        partitions.clone(),
        storage_report,
        Duration::from_millis(config.heartbeat_ms),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(async move {
        loop {
            let both =
                (*queues_version.borrow_and_update()).min(*streams_version.borrow_and_update());
            if both >= 0 {
                applied.send_replace(both);
            }
            tokio::select! {
                changed = queues_version.changed() => if changed.is_err() { break },
                changed = streams_version.changed() => if changed.is_err() { break },
            }
        }
    }));
    let routers = Arc::new(Routers::default());
    let peers = peers::Peers::new(
        config.node_id.clone(),
        Arc::new(config.node_key.clone()),
        api::forward::client(),
        topology.clone(),
    );
    let forwarder = DeadLetterForwarder {
        groups: groups.clone(),
        topology: topology.clone(),
        routers: routers.clone(),
        peers: peers.clone(),
    };
    tasks.push(tokio::spawn(forwarder.run(
        dead_letter_notes,
        dead_letters_retry,
        shutdown.clone(),
    )));
    let receipts = api::receipts::ReceiptSeal::new(&config.node_key);
    let state = BrokerState {
        topology,
        jwks: Arc::new(auth::Jwks::new(client)),
        node_id: config.node_id.clone(),
        groups,
        partitions,
        routers,
        limits: Arc::new(limits::PublishLimits::default()),
        node_key: Arc::new(config.node_key.clone()),
        forwarder: api::forward::client(),
        node_key_sha256: Arc::new(sha2::Sha256::digest(config.node_key.as_bytes()).to_vec()),
        dispatchers: Arc::new(api::dispatch::Dispatchers::new(receipts.clone())),
        receipts,
        peers,
    };
    let serve_shutdown = shutdown.clone();
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move { serve_shutdown.cancelled().await })
        .await?;
    shutdown.cancel();
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

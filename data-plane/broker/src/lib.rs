//! `sluice-broker`, the data plane: it registers with the control plane,
//! follows its topology feed (tenants, key verifiers, exchanges, queues,
//! bindings, streams and placements), authenticates tenants offline, and
//! serves the data API. Queue and stream groups (openraft on the segment log
//! of `sluice-storage`) are hosted here as the broker issue lands.

pub mod api;
pub mod auth;
pub mod config;
pub mod control;
pub mod error;
pub mod topology;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::BrokerState;
use crate::config::Config;
use crate::control::follower::NodeIdentity;
use crate::control::{ControlClient, Follower};

/// Runs the broker until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = ControlClient::new(&config.control_url, &config.node_key)?;
    let node = NodeIdentity {
        node_id: config.node_id.clone(),
        data_url: config.advertise_url(),
        zone: config.zone.clone(),
    };
    let (topology, tasks) = Follower::start(
        client.clone(),
        node,
        Duration::from_millis(config.heartbeat_ms),
        shutdown.clone(),
    );
    let state = BrokerState {
        topology,
        jwks: Arc::new(auth::Jwks::new(client)),
        node_id: config.node_id.clone(),
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

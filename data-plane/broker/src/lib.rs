//! `sluice-broker`, the data plane. The folders are its rooms, each
//! depending only on those listed before it:
//!
//! - [`error`]: the data plane's error kinds, free of any protocol.
//! - [`config`]: the broker's one typed configuration.
//! - [`raft`]: openraft glue every group shares (group, state machine
//!   adapter, timing, network seam).
//! - [`control`]: the link to the control plane (register, topology feed,
//!   heartbeats) and the topology picture everything reads.
//! - [`cluster`]: the other brokers — which one hosts a group, the node
//!   key, the one peer client.
//! - [`admission`]: who the caller is and whether a publish fits the
//!   tenant's rate and storage quotas.
//! - [`queue`]: queues hosted here — groups, publish fan-out through
//!   exchanges, push dispatch, receipts, dead-lettering and redrive.
//! - [`stream`]: stream partitions hosted here — produce, fetch, consumer
//!   groups.
//! - [`node`]: one broker's state, how it starts and what runs until
//!   shutdown.
//! - [`metrics`]: the Prometheus text, read from the node.
//! - [`frontend`]: the protocols clients speak (HTTP today), thin
//!   translations into calls on the rooms above.

pub mod admission;
pub mod cluster;
pub mod config;
pub mod control;
pub mod error;
pub mod frontend;
pub mod metrics;
pub mod node;
pub mod queue;
pub mod raft;
pub mod stream;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::node::Node;

/// Runs the broker until `shutdown` is cancelled: the node's tasks, the
/// HTTP front end on `listener` and the operator's `/metrics` on
/// `metrics_listener`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    metrics_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Installed before anything is counted: counts made before are lost.
    metrics::handle();
    queue::spill::set_memory_pages(config.backlog_memory_pages);
    queue::read_ahead::set_entries(config.log_read_ahead_entries);
    let (node, tasks) = Node::start(&config, shutdown.clone())?;
    // Whichever listener ends first (shutdown or a failure) ends the other:
    // a broker without its data port, or unseen by its scraper, should stop.
    let data = async {
        let served = frontend::http::serve(listener, node.clone(), shutdown.clone()).await;
        shutdown.cancel();
        served
    };
    let scrape = async {
        let served =
            frontend::http::scrape::serve(metrics_listener, node.clone(), shutdown.clone()).await;
        shutdown.cancel();
        served
    };
    let (data, scrape) = tokio::join!(data, scrape);
    for task in tasks {
        let _ = task.await;
    }
    data.and(scrape)
}

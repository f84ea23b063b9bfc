//! The loop both group managers (queues, stream partitions) run: converge
//! to every new topology, report its version as applied only once converged,
//! retry a failed convergence every 500 ms, and close the groups at shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::control::TopologyHandle;
use crate::control::topology::Topology;

const RETRY: Duration = Duration::from_millis(500);

/// A manager of the groups this node hosts.
pub trait Converge: Send {
    /// Opens, updates and removes groups to match `topology`; false when
    /// something failed and the same topology must be tried again.
    fn converge(&mut self, topology: &Topology) -> impl Future<Output = bool> + Send;
    /// Closes every group (shutdown).
    fn close_all(&mut self) -> impl Future<Output = ()> + Send;
}

/// Runs `manager` until `shutdown` is cancelled or the topology feed ends.
pub async fn follow<M: Converge>(
    mut manager: M,
    topology: TopologyHandle,
    applied: watch::Sender<i64>,
    shutdown: CancellationToken,
) {
    let mut updates = topology.subscribe();
    loop {
        let current = updates.borrow_and_update().clone();
        let mut converged = true;
        if current.version >= 0 {
            converged = manager.converge(&current).await;
            if converged {
                applied.send_replace(current.version);
            }
        }
        let retry = async {
            if converged {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(RETRY).await;
        };
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { break },
            _ = retry => {}
            _ = shutdown.cancelled() => break,
        }
    }
    manager.close_all().await;
}

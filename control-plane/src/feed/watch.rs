//! The latest topology version, pushed to waiting feed readers.
//!
//! A Postgres trigger `NOTIFY`s `sluice_topology` on every version bump
//! (from any control-plane replica); one task per process listens and
//! publishes the version on a `watch` channel. A slow poll covers
//! notifications lost while the listener reconnects.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

#[derive(Clone)]
pub struct VersionWatch {
    receiver: watch::Receiver<i64>,
}

const CHANNEL: &str = "sluice_topology";
const POLL: Duration = Duration::from_secs(2);

impl VersionWatch {
    /// Starts the listener task; it ends when every `VersionWatch` clone is dropped.
    pub async fn start(pool: PgPool) -> Result<VersionWatch, sqlx::Error> {
        let initial = current_version(&pool).await?;
        let (sender, receiver) = watch::channel(initial);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        tokio::spawn(async move {
            loop {
                let notified = tokio::select! {
                    n = listener.try_recv() => n.ok().flatten().and_then(|n| n.payload().parse::<i64>().ok()),
                    _ = tokio::time::sleep(POLL) => None,
                    _ = sender.closed() => return,
                };
                let version = match notified {
                    Some(v) => v,
                    None => match current_version(&pool).await {
                        Ok(v) => v,
                        Err(err) => {
                            tracing::warn!(error = %err, "topology version poll failed");
                            continue;
                        }
                    },
                };
                sender.send_if_modified(|current| {
                    let newer = version > *current;
                    if newer {
                        *current = version;
                    }
                    newer
                });
            }
        });
        Ok(VersionWatch { receiver })
    }

    pub fn current(&self) -> i64 {
        *self.receiver.borrow()
    }

    /// Waits until the version exceeds `since` or `timeout` passes; returns the latest version.
    pub async fn wait_past(&self, since: i64, timeout: Duration) -> i64 {
        let mut receiver = self.receiver.clone();
        let _ = tokio::time::timeout(timeout, receiver.wait_for(|v| *v > since)).await;
        *receiver.borrow()
    }
}

pub async fn current_version(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let (version,): (i64,) = sqlx::query_as("SELECT version FROM topology_state")
        .fetch_one(pool)
        .await?;
    Ok(version)
}

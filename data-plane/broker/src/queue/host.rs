//! The group manager: one task owns the groups this node hosts and converges
//! them to the topology. For every topology version it opens (or creates) a
//! group for each queue placed on this node under `data_dir/groups/<group_id>/`,
//! shuts down and deletes groups whose queue is gone, proposes
//! `UpdateSettings` where a queue's spec changed — and only then reports the
//! version as applied, so a declare that the control plane confirmed can be
//! published to at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use sluice_queue::Command;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::control::TopologyHandle;
use crate::control::topology::Topology;
use crate::error::{BrokerError, BrokerResult};
use crate::queue::activity::TenantActivity;
use crate::queue::group::{DeadLetterNote, GroupOutlets};
use crate::queue::{GroupSpec, QueueGroup};

/// Groups opened at the same time (a restart reopens every group).
const OPEN_CONCURRENCY: usize = 32;

/// The groups hosted here, by tenant and queue name.
pub struct GroupTable {
    /// The topology version these groups converged to (-1 before the first).
    version: i64,
    queues: HashMap<(i64, String), Arc<QueueGroup>>,
    by_id: HashMap<String, Arc<QueueGroup>>,
}

/// Read access to the hosted groups, for request handlers.
#[derive(Clone)]
pub struct QueueHost {
    receiver: watch::Receiver<Arc<GroupTable>>,
}

impl Default for GroupTable {
    fn default() -> Self {
        GroupTable {
            version: -1,
            queues: HashMap::new(),
            by_id: HashMap::new(),
        }
    }
}

impl QueueHost {
    /// The topology version the hosted groups converged to.
    pub fn version(&self) -> i64 {
        self.receiver.borrow().version
    }

    pub fn queue(&self, tenant_id: i64, name: &str) -> Option<Arc<QueueGroup>> {
        self.receiver
            .borrow()
            .queues
            .get(&(tenant_id, name.to_string()))
            .cloned()
    }

    pub fn by_id(&self, group_id: &str) -> Option<Arc<QueueGroup>> {
        self.receiver.borrow().by_id.get(group_id).cloned()
    }

    /// The tenant's queue `name`, hosted here: 404 when the topology has
    /// no such queue, 503 while it is placed here but not open yet.
    pub fn serving(
        &self,
        topology: &Topology,
        tenant_id: i64,
        name: &str,
    ) -> BrokerResult<Arc<QueueGroup>> {
        if !topology.queues.contains_key(&(tenant_id, name.to_string())) {
            return Err(BrokerError::NotFound {
                kind: "queue",
                name: name.to_string(),
            });
        }
        self.queue(tenant_id, name).ok_or_else(|| {
            BrokerError::Unavailable(format!("queue `{name}` is not hosted on this broker yet"))
        })
    }

    /// Every group hosted here.
    pub fn all(&self) -> Vec<Arc<QueueGroup>> {
        self.receiver.borrow().by_id.values().cloned().collect()
    }

    /// Bytes of live messages per tenant, over the queues hosted here.
    pub fn stored_bytes(&self) -> BTreeMap<i64, u64> {
        let mut bytes: BTreeMap<i64, u64> = BTreeMap::new();
        for group in self.all() {
            let stored = group.view().read(|q| q.stats().bytes);
            *bytes.entry(group.spec.tenant_id).or_default() += stored;
        }
        bytes
    }

    /// A fixed set of groups, without a manager (tests of what uses them).
    #[cfg(test)]
    pub(crate) fn fixed(groups: &[Arc<QueueGroup>]) -> QueueHost {
        let mut table = GroupTable::default();
        for group in groups {
            let key = (group.spec.tenant_id, group.spec.queue.clone());
            table.queues.insert(key, group.clone());
            table
                .by_id
                .insert(group.spec.group_id.clone(), group.clone());
        }
        let (_, receiver) = watch::channel(Arc::new(table));
        QueueHost { receiver }
    }
}

pub struct QueueHostManager {
    node_id: String,
    root: PathBuf,
    groups: HashMap<String, Arc<QueueGroup>>,
    table: watch::Sender<Arc<GroupTable>>,
    outlets: GroupOutlets,
}

impl QueueHostManager {
    /// Starts the manager task; it reports each converged version on
    /// `applied` and closes every group when `shutdown` is cancelled.
    pub fn start(
        node_id: String,
        data_dir: &Path,
        topology: TopologyHandle,
        applied: watch::Sender<i64>,
        dead_letters: mpsc::UnboundedSender<DeadLetterNote>,
        tenant_activity: Arc<TenantActivity>,
        shutdown: CancellationToken,
    ) -> (QueueHost, JoinHandle<()>) {
        let (table, receiver) = watch::channel(Arc::new(GroupTable::default()));
        let manager = QueueHostManager {
            node_id,
            root: data_dir.join("groups"),
            groups: HashMap::new(),
            table,
            outlets: GroupOutlets {
                dead_letters,
                tenant_activity,
            },
        };
        let task = tokio::spawn(crate::control::convergence::follow(
            manager, topology, applied, shutdown,
        ));
        (QueueHost { receiver }, task)
    }

    /// One pass towards `topology`; false when something must be retried.
    async fn converge_to(&mut self, topology: &Topology) -> bool {
        let mut ok = true;
        let mut desired: HashMap<String, GroupSpec> = HashMap::new();
        for queue in topology.queues.values() {
            if !queue.placement.is_on(&self.node_id) {
                continue;
            }
            if !crate::raft::safe_dir_name(&queue.placement.group_id) {
                tracing::warn!(group = %queue.placement.group_id, "refusing a group id unfit for a directory name");
                continue;
            }
            desired.insert(
                queue.placement.group_id.clone(),
                GroupSpec {
                    group_id: queue.placement.group_id.clone(),
                    tenant_id: queue.tenant_id,
                    tenant: topology
                        .tenants
                        .get(&queue.tenant_id)
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    queue: queue.name.clone(),
                    settings: queue.spec.clone(),
                    replicas: queue.placement.replicas.clone(),
                },
            );
        }

        let gone: Vec<String> = self
            .groups
            .keys()
            .filter(|id| !desired.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(group) = self.groups.remove(&id) {
                group.close().await;
                tracing::info!(group = %id, queue = %group.spec.queue, "queue deleted; group removed");
            }
        }
        ok &= self.remove_orphan_dirs(&desired).await;

        let missing: Vec<GroupSpec> = desired
            .values()
            .filter(|spec| !self.groups.contains_key(&spec.group_id))
            .cloned()
            .collect();
        let opened: Vec<(String, anyhow::Result<Arc<QueueGroup>>)> =
            futures_util::stream::iter(missing)
                .map(|spec| {
                    let dir = self.root.join(&spec.group_id);
                    let node_id = self.node_id.clone();
                    let outlets = self.outlets.clone();
                    async move {
                        let id = spec.group_id.clone();
                        (id, QueueGroup::open(&dir, &node_id, spec, outlets).await)
                    }
                })
                .buffer_unordered(OPEN_CONCURRENCY)
                .collect()
                .await;
        for (id, result) in opened {
            match result {
                Ok(group) => {
                    tracing::info!(group = %id, queue = %group.spec.queue, "queue group open");
                    self.groups.insert(id, group);
                }
                Err(err) => {
                    tracing::error!(group = %id, error = %err, "opening a queue group failed; retrying");
                    ok = false;
                }
            }
        }

        for spec in desired.values() {
            let Some(group) = self.groups.get(&spec.group_id) else {
                continue;
            };
            let same = group.view().read(|q| q.settings() == &spec.settings);
            if !same && group.is_leader() {
                let update = Command::UpdateSettings {
                    settings: spec.settings.clone(),
                };
                if let Err(err) = group.propose(update, Vec::new()).await {
                    tracing::warn!(group = %spec.group_id, error = %err, "updating queue settings failed");
                    ok = false;
                }
            }
        }

        let mut table = GroupTable {
            version: if ok {
                topology.version
            } else {
                self.table.borrow().version
            },
            ..GroupTable::default()
        };
        for group in self.groups.values() {
            let key = (group.spec.tenant_id, group.spec.queue.clone());
            table.queues.insert(key, group.clone());
            table
                .by_id
                .insert(group.spec.group_id.clone(), group.clone());
        }
        self.table.send_replace(Arc::new(table));
        ok
    }

    /// Deletes group directories no queue placed here owns any more
    /// (including queues deleted while this broker was down).
    async fn remove_orphan_dirs(&self, desired: &HashMap<String, GroupSpec>) -> bool {
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return true,
            Err(err) => {
                tracing::warn!(error = %err, "listing group directories failed");
                return false;
            }
        };
        let mut ok = true;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().to_string();
            if desired.contains_key(&name) || self.groups.contains_key(&name) {
                continue;
            }
            if let Err(err) = tokio::fs::remove_dir_all(entry.path()).await {
                tracing::warn!(group = %name, error = %err, "deleting a group directory failed");
                ok = false;
            }
        }
        ok
    }
}

impl crate::control::convergence::Converge for QueueHostManager {
    async fn converge(&mut self, topology: &Topology) -> bool {
        self.converge_to(topology).await
    }

    async fn close_all(&mut self) {
        for group in self.groups.values() {
            group.close().await;
        }
    }
}

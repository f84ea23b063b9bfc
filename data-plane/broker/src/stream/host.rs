//! The stream group manager: one task owns the stream partitions this node
//! hosts and converges them to the topology, like [`crate::queue::host`] does
//! for queues. For every topology version it opens (or creates) a partition
//! group for each partition placed here under `data_dir/streams/<group_id>/`,
//! closes and deletes partitions whose stream is gone, and only then reports
//! the version on its own `applied` watch (`lib.rs` reports the lower of the
//! queue and stream managers' versions to the control plane).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::control::TopologyHandle;
use crate::control::topology::Topology;
use crate::error::{BrokerError, BrokerResult};
use crate::stream::timer::Retention;
use crate::stream::{PartitionGroup, PartitionSpec};

const OPEN_CONCURRENCY: usize = 32;

/// The partitions hosted here, by tenant, stream and partition number.
pub struct PartitionTable {
    /// The topology version these partitions converged to (-1 before the first).
    version: i64,
    partitions: HashMap<(i64, String, u32), Arc<PartitionGroup>>,
}

impl Default for PartitionTable {
    fn default() -> Self {
        PartitionTable {
            version: -1,
            partitions: HashMap::new(),
        }
    }
}

/// Read access to the hosted partitions, for request handlers.
#[derive(Clone)]
pub struct PartitionHost {
    receiver: watch::Receiver<Arc<PartitionTable>>,
}

impl PartitionHost {
    /// The topology version the hosted partitions converged to.
    pub fn version(&self) -> i64 {
        self.receiver.borrow().version
    }

    pub fn get(&self, tenant_id: i64, stream: &str, partition: u32) -> Option<Arc<PartitionGroup>> {
        self.receiver
            .borrow()
            .partitions
            .get(&(tenant_id, stream.to_string(), partition))
            .cloned()
    }

    /// Partition `partition` of the tenant's `stream`, hosted here (503
    /// while it is not open here).
    pub fn serving(
        &self,
        tenant_id: i64,
        stream: &str,
        partition: u32,
    ) -> BrokerResult<Arc<PartitionGroup>> {
        self.get(tenant_id, stream, partition).ok_or_else(|| {
            BrokerError::Unavailable(format!(
                "partition {partition} of stream `{stream}` is not hosted on this broker yet"
            ))
        })
    }

    /// Every partition hosted here.
    pub fn all(&self) -> Vec<Arc<PartitionGroup>> {
        self.receiver
            .borrow()
            .partitions
            .values()
            .cloned()
            .collect()
    }

    /// Stored bytes of live produced batches per tenant, over the
    /// partitions hosted here (group heartbeats and commits in partition
    /// 0's log are not tenant data). Blocking: it reads log indexes.
    pub fn stored_bytes(&self) -> BTreeMap<i64, u64> {
        let mut bytes: BTreeMap<i64, u64> = BTreeMap::new();
        for partition in self.all() {
            let stored = partition.record_bytes().unwrap_or_else(|err| {
                // Over-count rather than under-count what could not be measured.
                tracing::warn!(group = %partition.spec.group_id, error = %err, "measuring a partition's record bytes failed; counting its whole log");
                partition.log_bytes()
            });
            *bytes.entry(partition.spec.tenant_id).or_default() += stored;
        }
        bytes
    }
}

pub struct PartitionHostManager {
    node_id: String,
    root: PathBuf,
    segment_bytes: u64,
    groups: HashMap<String, Arc<PartitionGroup>>,
    table: watch::Sender<Arc<PartitionTable>>,
}

impl PartitionHostManager {
    /// Starts the manager task; it reports each converged version on
    /// `applied` and closes every partition when `shutdown` is cancelled.
    pub fn start(
        node_id: String,
        data_dir: &Path,
        segment_bytes: u64,
        topology: TopologyHandle,
        applied: watch::Sender<i64>,
        shutdown: CancellationToken,
    ) -> (PartitionHost, JoinHandle<()>) {
        let (table, receiver) = watch::channel(Arc::new(PartitionTable::default()));
        let manager = PartitionHostManager {
            node_id,
            root: data_dir.join("streams"),
            segment_bytes,
            groups: HashMap::new(),
            table,
        };
        let task = tokio::spawn(crate::control::convergence::follow(
            manager, topology, applied, shutdown,
        ));
        (PartitionHost { receiver }, task)
    }

    /// The partitions placed on this node.
    fn desired(&self, topology: &Topology) -> HashMap<String, PartitionSpec> {
        let mut desired = HashMap::new();
        for stream in topology.streams.values() {
            for (number, placement) in stream.partitions.iter().enumerate() {
                if !placement.is_on(&self.node_id) {
                    continue;
                }
                if !crate::raft::safe_dir_name(&placement.group_id) {
                    tracing::warn!(group = %placement.group_id, "refusing a group id unfit for a directory name");
                    continue;
                }
                desired.insert(
                    placement.group_id.clone(),
                    PartitionSpec {
                        group_id: placement.group_id.clone(),
                        tenant_id: stream.tenant_id,
                        stream: stream.name.clone(),
                        partition: number as u32,
                        partitions: stream.partitions.len() as u32,
                        replicas: placement.replicas.clone(),
                        retention: Retention::of(&stream.spec),
                    },
                );
            }
        }
        desired
    }

    /// One pass towards `topology`; false when something must be retried.
    async fn converge_to(&mut self, topology: &Topology) -> bool {
        let mut ok = true;
        let desired = self.desired(topology);
        let gone: Vec<String> = self
            .groups
            .keys()
            .filter(|id| !desired.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(group) = self.groups.remove(&id) {
                group.close().await;
                tracing::info!(group = %id, stream = %group.spec.stream, "stream partition removed");
            }
        }
        ok &= self.remove_orphan_dirs(&desired).await;

        let missing: Vec<PartitionSpec> = desired
            .values()
            .filter(|spec| !self.groups.contains_key(&spec.group_id))
            .cloned()
            .collect();
        let opened: Vec<(String, anyhow::Result<Arc<PartitionGroup>>)> =
            futures_util::stream::iter(missing)
                .map(|spec| {
                    let dir = self.root.join(&spec.group_id);
                    let node_id = self.node_id.clone();
                    let segment_bytes = self.segment_bytes;
                    async move {
                        let id = spec.group_id.clone();
                        let opened = PartitionGroup::open(&dir, &node_id, spec, segment_bytes);
                        (id, opened.await)
                    }
                })
                .buffer_unordered(OPEN_CONCURRENCY)
                .collect()
                .await;
        for (id, result) in opened {
            match result {
                Ok(group) => {
                    tracing::info!(group = %id, stream = %group.spec.stream, partition = group.spec.partition, "stream partition open");
                    self.groups.insert(id, group);
                }
                Err(err) => {
                    tracing::error!(group = %id, error = %err, "opening a stream partition failed; retrying");
                    ok = false;
                }
            }
        }

        for spec in desired.values() {
            if let Some(group) = self.groups.get(&spec.group_id) {
                group.set_retention(spec.retention);
            }
        }

        let mut table = PartitionTable {
            version: if ok {
                topology.version
            } else {
                self.table.borrow().version
            },
            ..PartitionTable::default()
        };
        for group in self.groups.values() {
            let key = (
                group.spec.tenant_id,
                group.spec.stream.clone(),
                group.spec.partition,
            );
            table.partitions.insert(key, group.clone());
        }
        self.table.send_replace(Arc::new(table));
        ok
    }

    /// Deletes partition directories no partition placed here owns any more.
    async fn remove_orphan_dirs(&self, desired: &HashMap<String, PartitionSpec>) -> bool {
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return true,
            Err(err) => {
                tracing::warn!(error = %err, "listing stream directories failed");
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
                tracing::warn!(group = %name, error = %err, "deleting a partition directory failed");
                ok = false;
            }
        }
        ok
    }
}

impl crate::control::convergence::Converge for PartitionHostManager {
    async fn converge(&mut self, topology: &Topology) -> bool {
        self.converge_to(topology).await
    }

    async fn close_all(&mut self) {
        for group in self.groups.values() {
            group.close().await;
        }
    }
}

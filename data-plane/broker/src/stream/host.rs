//! The stream partitions hosted here: one task owns them and converges them
//! to the topology, like [`crate::queue::host`] does for queues, and
//! partitions sleep and wake the same way (see [`crate::raft::slot`] and
//! [`super::hibernation`]). For every topology version it makes a slot —
//! asleep: a partition is opened under `data_dir/streams/<group_id>/` on
//! first use — for each partition placed here, removes the slots and
//! directories of partitions whose stream is gone, hands changed retention
//! settings to the partitions, and only then reports the version on its own
//! `applied` watch (`lib.rs` reports the lower of the queue and stream
//! managers' versions to the control plane).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::control::TopologyHandle;
use crate::control::topology::{FeedStream, Topology};
use crate::error::{BrokerError, BrokerResult};
use crate::raft::sleep_record::{self, Found};
use crate::raft::slot::{InUse, Now, SlotError};
use crate::raft::sweeper::{Hibernation, Sweeper, shut_down_all};
use crate::stream::hibernation::{self, PartitionSlot, PartitionSummary};
use crate::stream::timer::Retention;
use crate::stream::traffic::PartitionTraffic;
use crate::stream::{PartitionGroup, PartitionSpec};

const OPEN_CONCURRENCY: usize = 32;

/// A partition in use (it stays awake while this lives).
pub type PartitionInUse = InUse<PartitionGroup>;

/// One partition placed on this broker, awake or asleep.
pub struct HostedPartition {
    pub spec: PartitionSpec,
    traffic: Arc<PartitionTraffic>,
    /// The stream's current retention, for the next open.
    retention: Arc<Mutex<Retention>>,
    slot: Arc<PartitionSlot>,
}

/// A partition's bounds and stored bytes, awake or asleep.
#[derive(Debug, Clone, Copy)]
pub struct PartitionFigures {
    pub earliest_offset: u64,
    pub end_offset: u64,
    pub high_watermark: u64,
    pub log_bytes: u64,
}

impl HostedPartition {
    /// The group, woken if it sleeps: 404 once the stream is gone, 503
    /// (`capacity-exhausted`, with a retry time) while it cannot be opened.
    pub async fn acquire(&self) -> BrokerResult<PartitionInUse> {
        self.slot.acquire().await.map_err(|err| match err {
            SlotError::Removed => BrokerError::NotFound {
                kind: "stream",
                name: self.spec.stream.clone(),
            },
            SlotError::Failed { error, retry_after } => BrokerError::CapacityExhausted {
                detail: format!(
                    "partition {} of stream `{}` cannot be opened on this broker now: {error}",
                    self.spec.partition, self.spec.stream
                ),
                retry_after_secs: retry_after.as_secs().max(1),
            },
        })
    }

    /// What the group is now, without waking it.
    pub fn now(&self) -> Now<PartitionGroup> {
        self.slot.now()
    }

    /// Its bounds and log size, without waking it (`None` once removed).
    pub fn figures(&self) -> Option<PartitionFigures> {
        match self.slot.now() {
            Now::Awake(group) => {
                let (earliest_offset, end_offset, high_watermark) = group
                    .view()
                    .read(|p| (p.earliest_offset(), p.end_offset(), p.high_watermark()));
                Some(PartitionFigures {
                    earliest_offset,
                    end_offset,
                    high_watermark,
                    log_bytes: group.log_bytes(),
                })
            }
            Now::Asleep(summary) => Some(PartitionFigures {
                earliest_offset: summary.earliest_offset,
                end_offset: summary.end_offset,
                high_watermark: summary.high_watermark,
                log_bytes: summary.log_bytes,
            }),
            Now::Removed => None,
        }
    }

    /// Runs `read` on the stream's consumer groups, if this is partition 0
    /// (from the summary while it sleeps).
    pub fn coordinator<T>(
        &self,
        read: impl FnOnce(&sluice_stream::GroupCoordinator) -> T,
    ) -> Option<T> {
        match self.slot.now() {
            Now::Awake(group) => group.view().coordinator(read),
            Now::Asleep(summary) => summary.coordinator.as_ref().map(read),
            Now::Removed => None,
        }
    }

    /// Produced and fetched counters since this broker started hosting it.
    pub fn traffic(&self) -> &PartitionTraffic {
        &self.traffic
    }

    pub fn is_awake(&self) -> bool {
        self.slot.is_awake()
    }

    /// The error of the last failed open, while it keeps failing.
    pub fn failing(&self) -> Option<String> {
        self.slot.failing()
    }

    /// Stored bytes of its live produced batches (blocking while awake: it
    /// may read the log's index).
    fn record_bytes(&self) -> u64 {
        match self.slot.now() {
            Now::Awake(group) => group.record_bytes().unwrap_or_else(|err| {
                // Over-count rather than under-count what could not be measured.
                tracing::warn!(group = %group.spec.group_id, error = %err, "measuring a partition's record bytes failed; counting its whole log");
                group.log_bytes()
            }),
            Now::Asleep(summary) => summary.record_bytes,
            Now::Removed => 0,
        }
    }
}

/// The partitions hosted here, by tenant, stream and partition number
/// (ordered: one stream's partitions are a range). Persistent maps: the
/// manager publishes a copy per version that shares all but what changed.
#[derive(Clone)]
pub struct PartitionTable {
    /// The topology version these partitions converged to (-1 before the first).
    version: i64,
    partitions: imbl::OrdMap<(i64, String, u32), Arc<HostedPartition>>,
    by_id: imbl::HashMap<String, Arc<HostedPartition>>,
}

impl Default for PartitionTable {
    fn default() -> Self {
        PartitionTable {
            version: -1,
            partitions: imbl::OrdMap::new(),
            by_id: imbl::HashMap::new(),
        }
    }
}

impl PartitionTable {
    fn insert(&mut self, hosted: Arc<HostedPartition>) {
        let spec = &hosted.spec;
        let key = (spec.tenant_id, spec.stream.clone(), spec.partition);
        self.partitions.insert(key, hosted.clone());
        self.by_id.insert(hosted.spec.group_id.clone(), hosted);
    }

    fn remove(&mut self, group_id: &str) -> Option<Arc<HostedPartition>> {
        let hosted = self.by_id.remove(group_id)?;
        let spec = &hosted.spec;
        self.partitions
            .remove(&(spec.tenant_id, spec.stream.clone(), spec.partition));
        Some(hosted)
    }

    /// The group ids of the stream's partitions hosted here.
    fn of_stream(&self, tenant_id: i64, stream: &str) -> impl Iterator<Item = &String> {
        let from = (tenant_id, stream.to_string(), 0);
        let to = (tenant_id, stream.to_string(), u32::MAX);
        self.partitions
            .range(from..=to)
            .map(|(_, hosted)| &hosted.spec.group_id)
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

    /// Partition `partition` of the tenant's `stream`, if hosted here.
    pub fn get(
        &self,
        tenant_id: i64,
        stream: &str,
        partition: u32,
    ) -> Option<Arc<HostedPartition>> {
        self.receiver
            .borrow()
            .partitions
            .get(&(tenant_id, stream.to_string(), partition))
            .cloned()
    }

    /// Partition `partition` of the tenant's `stream`, hosted here and
    /// awake (503 while it is not hosted here or cannot be opened).
    pub async fn serving(
        &self,
        tenant_id: i64,
        stream: &str,
        partition: u32,
    ) -> BrokerResult<PartitionInUse> {
        let hosted = self.get(tenant_id, stream, partition).ok_or_else(|| {
            BrokerError::Unavailable(format!(
                "partition {partition} of stream `{stream}` is not hosted on this broker yet"
            ))
        })?;
        hosted.acquire().await
    }

    /// Every partition hosted here.
    pub fn all(&self) -> Vec<Arc<HostedPartition>> {
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
            *bytes.entry(partition.spec.tenant_id).or_default() += partition.record_bytes();
        }
        bytes
    }
}

pub struct PartitionHostManager {
    node_id: String,
    /// The topology version last converged to (-1: none yet).
    converged: i64,
    root: PathBuf,
    segment_bytes: u64,
    /// The partitions hosted, as the manager changes them; published on `table`.
    hosted: PartitionTable,
    table: watch::Sender<Arc<PartitionTable>>,
    sweeper: Arc<Sweeper<PartitionGroup>>,
}

impl PartitionHostManager {
    /// Starts the manager task and the sweeper; the manager reports each
    /// converged version on `applied`, and at `shutdown` puts every
    /// partition to sleep (or closes those that cannot sleep).
    pub fn start(
        node_id: String,
        data_dir: &Path,
        segment_bytes: u64,
        topology: TopologyHandle,
        applied: watch::Sender<i64>,
        hibernation: Hibernation,
        shutdown: CancellationToken,
    ) -> (PartitionHost, JoinHandle<()>) {
        let (table, receiver) = watch::channel(Arc::new(PartitionTable::default()));
        let manager = PartitionHostManager {
            node_id,
            converged: -1,
            root: data_dir.join("streams"),
            segment_bytes,
            hosted: PartitionTable::default(),
            table,
            sweeper: Arc::default(),
        };
        let host = PartitionHost { receiver };
        let sweeper = tokio::spawn(manager.sweeper.clone().run(hibernation, shutdown.clone()));
        let task = tokio::spawn(async move {
            crate::control::convergence::follow(manager, topology, applied, shutdown).await;
            let _ = sweeper.await;
        });
        (host, task)
    }

    /// A slot for a partition newly placed here, as its directory says;
    /// true when it must be opened now (it was awake when the broker stopped).
    fn slot_for(
        &self,
        spec: PartitionSpec,
        found: Found<PartitionSummary>,
    ) -> (Arc<HostedPartition>, bool) {
        let (summary, wake) = match found {
            Found::Nothing => (PartitionSummary::default(), false),
            Found::Asleep(summary) => (*summary, false),
            Found::Awake => (PartitionSummary::default(), true),
        };
        let traffic = Arc::new(PartitionTraffic::default());
        let retention = Arc::new(Mutex::new(spec.retention));
        let opener = hibernation::opener(
            self.root.join(&spec.group_id),
            self.node_id.clone(),
            spec.clone(),
            self.segment_bytes,
            retention.clone(),
            traffic.clone(),
        );
        let hosted = Arc::new(HostedPartition {
            spec,
            traffic,
            retention,
            slot: PartitionSlot::asleep(summary, opener, &self.sweeper),
        });
        (hosted, wake)
    }

    /// The partitions placed on this node of the streams in `scope` (all: `None`).
    fn desired(
        &self,
        topology: &Topology,
        scope: Option<&HashSet<(i64, String)>>,
    ) -> HashMap<String, PartitionSpec> {
        let streams: Box<dyn Iterator<Item = &FeedStream>> = match scope {
            None => Box::new(topology.streams.values().map(|s| &**s)),
            Some(keys) => Box::new(
                keys.iter()
                    .filter_map(|key| topology.streams.get(key))
                    .map(|s| &**s),
            ),
        };
        let mut desired = HashMap::new();
        for stream in streams {
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

    /// One pass towards `topology`: over the streams changed since the last
    /// version converged to when those are known, else over every stream.
    async fn converge_to(&mut self, topology: &Topology) -> bool {
        let changed = topology.changed_since(self.converged);
        let ok = self
            .converge_scope(topology, changed.as_ref().map(|c| &c.streams))
            .await;
        if ok {
            self.converged = topology.version;
        }
        ok
    }

    /// False when something must be retried.
    async fn converge_scope(
        &mut self,
        topology: &Topology,
        scope: Option<&HashSet<(i64, String)>>,
    ) -> bool {
        let mut ok = true;
        let desired = self.desired(topology, scope);
        let gone: Vec<String> = match scope {
            None => self
                .hosted
                .by_id
                .keys()
                .filter(|id| !desired.contains_key(*id))
                .cloned()
                .collect(),
            Some(keys) => keys
                .iter()
                .flat_map(|(tenant_id, stream)| self.hosted.of_stream(*tenant_id, stream))
                .filter(|id| !desired.contains_key(*id))
                .cloned()
                .collect(),
        };
        for id in gone {
            if let Some(hosted) = self.hosted.remove(&id) {
                if let Some(group) = hosted.slot.remove().await {
                    group.close().await;
                }
                ok &= crate::raft::remove_group_dir(&self.root.join(&id)).await;
                tracing::info!(group = %id, stream = %hosted.spec.stream, "stream partition removed");
            }
        }
        if scope.is_none() {
            ok &= self.remove_orphan_dirs(&desired).await;
        }

        let missing: Vec<PartitionSpec> = desired
            .values()
            .filter(|spec| !self.hosted.by_id.contains_key(&spec.group_id))
            .cloned()
            .collect();
        let dirs: Vec<PathBuf> = missing
            .iter()
            .map(|spec| self.root.join(&spec.group_id))
            .collect();
        let found = match tokio::task::spawn_blocking(move || {
            dirs.iter()
                .map(|dir| sleep_record::find::<PartitionSummary>(dir))
                .collect::<Vec<_>>()
        })
        .await
        {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "looking into partition directories failed");
                return false;
            }
        };
        let mut to_wake = Vec::new();
        for (spec, found) in missing.into_iter().zip(found) {
            let (hosted, wake) = self.slot_for(spec, found);
            if wake {
                to_wake.push(hosted.clone());
            }
            self.hosted.insert(hosted);
        }
        let woken: Vec<(String, BrokerResult<PartitionInUse>)> =
            futures_util::stream::iter(to_wake)
                .map(|hosted| async move { (hosted.spec.group_id.clone(), hosted.acquire().await) })
                .buffer_unordered(OPEN_CONCURRENCY)
                .collect()
                .await;
        for (id, result) in woken {
            match result {
                Ok(group) => {
                    tracing::info!(group = %id, stream = %group.spec.stream, partition = group.spec.partition, "stream partition reopened");
                }
                Err(err) => {
                    tracing::error!(group = %id, error = %err, "reopening a stream partition failed; retrying");
                    ok = false;
                }
            }
        }

        for spec in desired.values() {
            if let Some(hosted) = self.hosted.by_id.get(&spec.group_id) {
                *hosted.retention.lock().unwrap_or_else(|e| e.into_inner()) = spec.retention;
                if let Now::Awake(group) = hosted.now() {
                    group.set_retention(spec.retention);
                }
            }
        }

        if ok {
            self.hosted.version = topology.version;
        }
        self.table.send_replace(Arc::new(self.hosted.clone()));
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
            if desired.contains_key(&name) || self.hosted.by_id.contains_key(&name) {
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
        shut_down_all(self.hosted.by_id.values().map(|h| h.slot.clone()).collect()).await;
    }
}

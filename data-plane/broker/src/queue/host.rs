//! The queues hosted here: one task owns them and converges them to the
//! topology, another puts idle ones to sleep.
//!
//! For every topology version the manager makes a slot (see
//! [`crate::raft::slot`]) for each queue placed on this node — asleep: a
//! queue is opened under `data_dir/groups/<group_id>/` on its first use,
//! not when it is declared —, removes the slots and directories of queues
//! that are gone, proposes `UpdateSettings` where a queue's spec changed
//! (waking it) — and only then reports the version as applied, so a
//! declare that the control plane confirmed can be published to at once.
//! At start it opens the queues that were awake when the broker stopped
//! (their directory has no sleep record): they may owe dead letters or
//! hold leftover consumers. The sweeper ([`sweep`]) puts queues to sleep
//! that nobody used for `hibernate_after_ms`, the least recently used first
//! beyond `max_awake_groups`, and wakes sleeping ones whose timers fell due.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use sluice_queue::{Command, Stats};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::control::TopologyHandle;
use crate::control::topology::{FeedQueue, Topology};
use crate::error::{BrokerError, BrokerResult};
use crate::queue::activity::{Activity, Rates, TenantActivity, Totals};
use crate::queue::group::{DeadLetterNote, GroupOutlets};
use crate::queue::hibernation::{self, QueueSlot, QueueSummary};
use crate::queue::{GroupSpec, QueueGroup};
use crate::raft::sleep_record::{self, Found};
use crate::raft::slot::{InUse, Now, SlotError};
use crate::raft::sweeper::{Hibernation, Sweeper, shut_down_all};

/// Groups opened at the same time (a restart reopens the awake ones).
const OPEN_CONCURRENCY: usize = 32;

/// A queue group in use (it stays awake while this lives).
pub type QueueInUse = InUse<QueueGroup>;

/// One queue placed on this broker, awake or asleep.
pub struct HostedQueue {
    pub spec: GroupSpec,
    activity: Arc<Activity>,
    slot: Arc<QueueSlot>,
}

impl HostedQueue {
    /// The group, woken if it sleeps: 404 once the queue is gone, 503
    /// (`capacity-exhausted`, with a retry time) while it cannot be opened.
    pub async fn acquire(&self) -> BrokerResult<QueueInUse> {
        self.slot.acquire().await.map_err(|err| match err {
            SlotError::Removed => BrokerError::NotFound {
                kind: "queue",
                name: self.spec.queue.clone(),
            },
            SlotError::Failed { error, retry_after } => BrokerError::CapacityExhausted {
                detail: format!(
                    "queue `{}` cannot be opened on this broker now: {error}",
                    self.spec.queue
                ),
                retry_after_secs: retry_after.as_secs().max(1),
            },
        })
    }

    /// What the group is now, without waking it.
    pub fn now(&self) -> Now<QueueGroup> {
        self.slot.now()
    }

    /// Its depths, without waking it (`None` once removed).
    pub fn stats(&self) -> Option<Stats> {
        match self.slot.now() {
            Now::Awake(group) => Some(group.view().read(|q| q.stats())),
            Now::Asleep(summary) => Some(summary.stats.clone()),
            Now::Removed => None,
        }
    }

    /// Bytes of its live messages, without waking it or copying its
    /// stats (measured for every hosted queue at every heartbeat).
    pub fn stored_bytes(&self) -> u64 {
        match self.slot.now() {
            Now::Awake(group) => group.view().read(|q| q.stats().bytes),
            Now::Asleep(summary) => summary.stats.bytes,
            Now::Removed => 0,
        }
    }

    /// What it did since this broker started hosting it (sleeps included).
    pub fn totals(&self) -> Totals {
        self.activity.totals()
    }

    /// Messages per second over the last few seconds.
    pub fn rates(&self) -> Rates {
        self.activity.rates(Instant::now())
    }

    pub fn is_awake(&self) -> bool {
        self.slot.is_awake()
    }

    /// The error of the last failed open, while it keeps failing.
    pub fn failing(&self) -> Option<String> {
        self.slot.failing()
    }

    /// Whether this is the slot `group` was handed out from.
    pub fn holds(&self, group: &QueueInUse) -> bool {
        group.is_of(&self.slot)
    }
}

/// The queues hosted here, by tenant and queue name. Persistent maps: the
/// manager publishes a copy per version that shares all but what changed.
#[derive(Clone)]
pub struct GroupTable {
    /// The topology version these groups converged to (-1 before the first).
    version: i64,
    queues: imbl::HashMap<(i64, String), Arc<HostedQueue>>,
    by_id: imbl::HashMap<String, Arc<HostedQueue>>,
}

impl GroupTable {
    fn insert(&mut self, hosted: Arc<HostedQueue>) {
        let key = (hosted.spec.tenant_id, hosted.spec.queue.clone());
        self.queues.insert(key, hosted.clone());
        self.by_id.insert(hosted.spec.group_id.clone(), hosted);
    }

    fn remove(&mut self, group_id: &str) -> Option<Arc<HostedQueue>> {
        let hosted = self.by_id.remove(group_id)?;
        self.queues
            .remove(&(hosted.spec.tenant_id, hosted.spec.queue.clone()));
        Some(hosted)
    }
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
            queues: imbl::HashMap::new(),
            by_id: imbl::HashMap::new(),
        }
    }
}

impl QueueHost {
    /// The topology version the hosted groups converged to.
    pub fn version(&self) -> i64 {
        self.receiver.borrow().version
    }

    /// The tenant's queue `name`, if it is hosted here (awake or asleep).
    pub fn queue(&self, tenant_id: i64, name: &str) -> Option<Arc<HostedQueue>> {
        self.receiver
            .borrow()
            .queues
            .get(&(tenant_id, name.to_string()))
            .cloned()
    }

    pub fn by_id(&self, group_id: &str) -> Option<Arc<HostedQueue>> {
        self.receiver.borrow().by_id.get(group_id).cloned()
    }

    /// The tenant's queue `name`, hosted here, awake or asleep: 404 when
    /// the topology has no such queue, 503 while it is placed here but not
    /// hosted yet.
    pub fn hosted(
        &self,
        topology: &Topology,
        tenant_id: i64,
        name: &str,
    ) -> BrokerResult<Arc<HostedQueue>> {
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

    /// [`QueueHost::hosted`], woken: also 503 while it cannot be opened.
    pub async fn serving(
        &self,
        topology: &Topology,
        tenant_id: i64,
        name: &str,
    ) -> BrokerResult<QueueInUse> {
        self.hosted(topology, tenant_id, name)?.acquire().await
    }

    /// Every queue hosted here.
    pub fn all(&self) -> Vec<Arc<HostedQueue>> {
        self.receiver.borrow().by_id.values().cloned().collect()
    }

    /// Bytes of live messages per tenant, over the queues hosted here.
    pub fn stored_bytes(&self) -> BTreeMap<i64, u64> {
        // A copy of the table (it shares its nodes), not a borrow held
        // across the walk, and no `Vec` of every queue.
        let table = self.receiver.borrow().clone();
        let mut bytes: BTreeMap<i64, u64> = BTreeMap::new();
        for hosted in table.by_id.values() {
            *bytes.entry(hosted.spec.tenant_id).or_default() += hosted.stored_bytes();
        }
        bytes
    }

    /// How many hosted queues are awake, and how many there are.
    pub fn awake_count(&self) -> (usize, usize) {
        let table = self.receiver.borrow();
        let awake = table.by_id.values().filter(|h| h.is_awake()).count();
        (awake, table.by_id.len())
    }

    /// A fixed set of open groups, without a manager (tests of what uses them).
    #[cfg(test)]
    pub(crate) fn fixed(groups: &[Arc<QueueGroup>]) -> QueueHost {
        let mut table = GroupTable::default();
        for group in groups {
            let opened = group.clone();
            let slot = QueueSlot::asleep(
                QueueSummary::empty(group.spec.settings.clone()),
                Box::new(move |_| {
                    let opened = opened.clone();
                    Box::pin(async move { Ok(opened) })
                }),
                &Arc::default(),
            );
            let hosted = Arc::new(HostedQueue {
                spec: group.spec.clone(),
                activity: Arc::new(Activity::new(Instant::now())),
                slot,
            });
            table.insert(hosted);
        }
        let (_, receiver) = watch::channel(Arc::new(table));
        QueueHost { receiver }
    }
}

pub struct QueueHostManager {
    node_id: String,
    /// The topology version last converged to (-1: none yet).
    converged: i64,
    root: PathBuf,
    /// The groups hosted, as the manager changes them; published on `table`.
    hosted: GroupTable,
    table: watch::Sender<Arc<GroupTable>>,
    sweeper: Arc<Sweeper<QueueGroup>>,
    outlets: GroupOutlets,
}

impl QueueHostManager {
    /// Starts the manager task and the sweeper; the manager reports each
    /// converged version on `applied`, and at `shutdown` puts every group
    /// to sleep (or closes those that owe something).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        node_id: String,
        data_dir: &Path,
        topology: TopologyHandle,
        applied: watch::Sender<i64>,
        dead_letters: mpsc::UnboundedSender<DeadLetterNote>,
        tenant_activity: Arc<TenantActivity>,
        hibernation: Hibernation,
        shutdown: CancellationToken,
    ) -> (QueueHost, JoinHandle<()>) {
        let (table, receiver) = watch::channel(Arc::new(GroupTable::default()));
        let manager = QueueHostManager {
            node_id,
            converged: -1,
            root: data_dir.join("groups"),
            hosted: GroupTable::default(),
            table,
            sweeper: Arc::default(),
            outlets: GroupOutlets {
                dead_letters,
                tenant_activity,
            },
        };
        let host = QueueHost { receiver };
        let sweeper = tokio::spawn(manager.sweeper.clone().run(hibernation, shutdown.clone()));
        let task = tokio::spawn(async move {
            crate::control::convergence::follow(manager, topology, applied, shutdown).await;
            let _ = sweeper.await;
        });
        (host, task)
    }

    /// A slot for a queue newly placed here, as its directory says.
    fn slot_for(&self, spec: GroupSpec, found: Found<QueueSummary>) -> (Arc<HostedQueue>, bool) {
        let activity = Arc::new(Activity::new(Instant::now()));
        let dir = self.root.join(&spec.group_id);
        let (summary, wake) = match found {
            Found::Nothing => (QueueSummary::empty(spec.settings.clone()), false),
            Found::Asleep(summary) => (*summary, false),
            Found::Awake => (QueueSummary::empty(spec.settings.clone()), true),
        };
        let opener = hibernation::opener(
            dir,
            self.node_id.clone(),
            spec.clone(),
            self.outlets.clone(),
            activity.clone(),
        );
        let hosted = Arc::new(HostedQueue {
            spec,
            activity,
            slot: QueueSlot::asleep(summary, opener, &self.sweeper),
        });
        (hosted, wake)
    }

    /// One pass towards `topology`; false when something must be retried.
    /// One pass towards `topology`: over the queues changed since the last
    /// version converged to when those are known, else over every queue.
    async fn converge_to(&mut self, topology: &Topology) -> bool {
        let changed = topology.changed_since(self.converged);
        let ok = self
            .converge_scope(topology, changed.as_ref().map(|c| &c.queues))
            .await;
        if ok {
            self.converged = topology.version;
        }
        ok
    }

    /// What this node should host of the queues in `scope` (all: `None`).
    fn desired(
        &self,
        topology: &Topology,
        scope: Option<&HashSet<(i64, String)>>,
    ) -> HashMap<String, GroupSpec> {
        let queues: Box<dyn Iterator<Item = &FeedQueue>> = match scope {
            None => Box::new(topology.queues.values().map(|q| &**q)),
            Some(keys) => Box::new(
                keys.iter()
                    .filter_map(|key| topology.queues.get(key))
                    .map(|q| &**q),
            ),
        };
        let mut desired = HashMap::new();
        for queue in queues {
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
        desired
    }

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
            Some(keys) => {
                let table = &self.hosted;
                keys.iter()
                    .filter_map(|key| table.queues.get(key))
                    .map(|hosted| hosted.spec.group_id.clone())
                    .filter(|id| !desired.contains_key(id))
                    .collect()
            }
        };
        for id in gone {
            if let Some(hosted) = self.hosted.remove(&id) {
                if let Some(group) = hosted.slot.remove().await {
                    group.close().await;
                }
                ok &= crate::raft::remove_group_dir(&self.root.join(&id)).await;
                tracing::info!(group = %id, queue = %hosted.spec.queue, "queue deleted; group removed");
            }
        }
        if scope.is_none() {
            ok &= self.remove_orphan_dirs(&desired).await;
        }

        let missing: Vec<GroupSpec> = desired
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
                .map(|dir| sleep_record::find::<QueueSummary>(dir))
                .collect::<Vec<_>>()
        })
        .await
        {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "looking into group directories failed");
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
        let woken: Vec<(String, BrokerResult<QueueInUse>)> = futures_util::stream::iter(to_wake)
            .map(|hosted| async move { (hosted.spec.group_id.clone(), hosted.acquire().await) })
            .buffer_unordered(OPEN_CONCURRENCY)
            .collect()
            .await;
        for (id, result) in woken {
            match result {
                Ok(group) => {
                    tracing::info!(group = %id, queue = %group.spec.queue, "queue group reopened");
                }
                Err(err) => {
                    tracing::error!(group = %id, error = %err, "reopening a queue group failed; retrying");
                    ok = false;
                }
            }
        }

        for spec in desired.values() {
            let Some(hosted) = self.hosted.by_id.get(&spec.group_id) else {
                continue;
            };
            let same = match hosted.now() {
                Now::Awake(group) => group.view().read(|q| q.settings() == &spec.settings),
                Now::Asleep(summary) => summary.settings == spec.settings,
                Now::Removed => true,
            };
            if same {
                continue;
            }
            let update = Command::UpdateSettings {
                settings: spec.settings.clone(),
            };
            let updated = match hosted.acquire().await {
                Ok(group) if group.is_leader() => group
                    .propose(update, Vec::new())
                    .await
                    .map(drop)
                    .map_err(|err| err.to_string()),
                Ok(_) => Ok(()),
                Err(err) => Err(err.to_string()),
            };
            if let Err(err) = updated {
                tracing::warn!(group = %spec.group_id, error = %err, "updating queue settings failed");
                ok = false;
            }
        }

        if ok {
            self.hosted.version = topology.version;
        }
        self.table.send_replace(Arc::new(self.hosted.clone()));
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
            if desired.contains_key(&name) || self.hosted.by_id.contains_key(&name) {
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
        shut_down_all(self.hosted.by_id.values().map(|h| h.slot.clone()).collect()).await;
    }
}

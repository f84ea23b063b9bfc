//! The one openraft state-machine adapter every group uses: it keeps the
//! group's replicated state (a queue, a stream partition) behind a mutex,
//! applies each committed entry to it at the entry's index, answers through
//! the entry's responder, and snapshots the state as JSON in a
//! [`SnapshotStore`].
//!
//! openraft's state machine worker is the only writer. Request handlers read
//! through a [`View`] (locked briefly, never across an `.await`) and wait for
//! changes on its watch channel (long-polls, timer tasks).
//!
//! What a group's state does with an entry is its [`Replicated`] impl; the
//! adapter knows nothing of queues or streams.

use std::io::{self, Cursor};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{BasicNode, Entry, EntryPayload, OptionalSend, RaftSnapshotBuilder, RaftTypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_storage::raft::{Records, SluiceLeaderId, SnapshotStore};
use tokio::sync::watch;

/// The state one group's log replicates.
pub trait Replicated: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What applying an entry answers the proposer.
    type Outcome;
    /// Applies the command in `records`, the entry at `log_index`.
    fn apply(&mut self, log_index: u64, records: &Records) -> Self::Outcome;
    /// A blank or membership entry at `log_index`: no command to apply.
    fn apply_empty(&mut self, log_index: u64) -> Self::Outcome;

    // What of the state is this replica's own (a queue's spilled backlog
    // pages): how it survives a restore, and what a snapshot must make
    // durable first. Nothing by default.

    /// Takes `restored` (from a snapshot) in place of this state.
    fn restore(&mut self, restored: Self) {
        *self = restored;
    }

    /// The state was opened or restored; the log after it comes next.
    fn opened(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// A local fault after which the state must not apply or snapshot.
    fn fault(&self) -> Option<String> {
        None
    }

    /// Makes durable what a snapshot serialized now refers to; answers a
    /// mark for [`Replicated::snapshot_saved`].
    fn prepare_snapshot(&self) -> io::Result<u64> {
        Ok(0)
    }

    /// The snapshot serialized after `mark` was prepared is durable.
    fn snapshot_saved(&mut self, _mark: u64) {}
}

/// Entries whose normal payload is [`Records`] (every group's entry type).
pub trait RecordsEntry: RaftEntry {
    /// The records of a normal entry; `None` for blank and membership ones.
    fn records(&self) -> Option<&Records>;
}

impl<N: openraft::Node> RecordsEntry for Entry<SluiceLeaderId, EntryPayload<Records, u64, N>> {
    fn records(&self) -> Option<&Records> {
        match &self.payload {
            EntryPayload::Normal(records) => Some(records),
            _ => None,
        }
    }
}

struct Machine<C: RaftTypeConfig, M> {
    state: M,
    last_applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
}

struct Shared<C: RaftTypeConfig, M> {
    machine: Mutex<Machine<C, M>>,
    /// Log index covered by the newest snapshot (0 before the first).
    snapshot_index: AtomicU64,
    /// Bumped after every applied entry.
    applied: watch::Sender<u64>,
}

impl<C: RaftTypeConfig, M> Shared<C, M> {
    fn lock(&self) -> MutexGuard<'_, Machine<C, M>> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Read-only access to a group's state.
pub struct View<C: RaftTypeConfig, M> {
    shared: Arc<Shared<C, M>>,
}

impl<C: RaftTypeConfig, M> Clone for View<C, M> {
    fn clone(&self) -> Self {
        View {
            shared: self.shared.clone(),
        }
    }
}

impl<C: RaftTypeConfig, M> View<C, M> {
    /// Runs `read` on the current state (briefly locked).
    pub fn read<T>(&self, read: impl FnOnce(&M) -> T) -> T {
        read(&self.shared.lock().state)
    }

    /// A receiver that changes whenever entries were applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }

    /// The log index the newest snapshot covers (0 before the first).
    pub fn snapshot_index(&self) -> u64 {
        self.shared.snapshot_index.load(Ordering::Acquire)
    }

    /// The index of the last applied entry (0 before the first).
    pub fn applied_index(&self) -> u64 {
        self.shared
            .lock()
            .last_applied
            .as_ref()
            .map_or(0, |id| id.index)
    }
}

/// The state machine openraft drives for one group.
pub struct ReplicatedStateMachine<C: RaftTypeConfig, M> {
    shared: Arc<Shared<C, M>>,
    snapshots: SnapshotStore,
    _config: PhantomData<C>,
}

impl<C: RaftTypeConfig, M> Clone for ReplicatedStateMachine<C, M> {
    fn clone(&self) -> Self {
        ReplicatedStateMachine {
            shared: self.shared.clone(),
            snapshots: self.snapshots.clone(),
            _config: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig, M: Replicated> ReplicatedStateMachine<C, M> {
    /// The state as of its newest snapshot in `dir` (openraft then applies
    /// the log after it), or `initial`.
    pub fn open(dir: &Path, initial: M) -> sluice_storage::Result<Self> {
        let snapshots = SnapshotStore::open(dir)?;
        let mut machine = Machine {
            state: initial,
            last_applied: None,
            membership: StoredMembershipOf::<C>::default(),
        };
        let mut snapshot_index = 0;
        if let Some((meta, data)) = snapshots.load_latest::<SnapshotMetaOf<C>>()? {
            let restored = serde_json::from_slice(&data)
                .map_err(|e| sluice_storage::Error::Decode(format!("group snapshot: {e}")))?;
            machine.state.restore(restored);
            snapshot_index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
            machine.last_applied = meta.last_log_id;
            machine.membership = meta.last_membership;
        }
        machine
            .state
            .opened()
            .map_err(|source| sluice_storage::Error::Io {
                context: "opening the group state's local files".into(),
                source,
            })?;
        let (applied, _) = watch::channel(0);
        Ok(ReplicatedStateMachine {
            shared: Arc::new(Shared {
                machine: Mutex::new(machine),
                snapshot_index: AtomicU64::new(snapshot_index),
                applied,
            }),
            snapshots,
            _config: PhantomData,
        })
    }

    pub fn view(&self) -> View<C, M> {
        View {
            shared: self.shared.clone(),
        }
    }

    fn covered(&self, meta: &SnapshotMetaOf<C>) {
        let index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
        self.shared.snapshot_index.store(index, Ordering::Release);
    }
}

impl<C, M> RaftSnapshotBuilder<C> for ReplicatedStateMachine<C, M>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode, R = M::Outcome>,
    M: Replicated,
{
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Cursor<Vec<u8>>>, io::Error> {
        let (meta, data, mark) = {
            let machine = self.shared.lock();
            if let Some(fault) = machine.state.fault() {
                return Err(io::Error::other(fault));
            }
            let meta = SnapshotMetaOf::<C> {
                last_log_id: machine.last_applied.clone(),
                last_membership: machine.membership.clone(),
            };
            let mark = machine.state.prepare_snapshot()?;
            let data = serde_json::to_vec(&machine.state).map_err(io::Error::other)?;
            (meta, data, mark)
        };
        self.snapshots.save(&meta, &data)?;
        self.shared.lock().state.snapshot_saved(mark);
        self.covered(&meta);
        Ok(SnapshotOf::<C, _> {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl<C, M> RaftStateMachine<C> for ReplicatedStateMachine<C, M>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode, R = M::Outcome>,
    C::Entry: RecordsEntry,
    M: Replicated,
{
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let machine = self.shared.lock();
        Ok((machine.last_applied.clone(), machine.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let outcome = {
                let mut machine = self.shared.lock();
                let log_id = entry.log_id();
                let index = log_id.index;
                machine.last_applied = Some(log_id.clone());
                if let Some(membership) = entry.get_membership() {
                    machine.membership = StoredMembershipOf::<C>::new(Some(log_id), membership);
                }
                let outcome = match entry.records() {
                    Some(records) => machine.state.apply(index, records),
                    None => machine.state.apply_empty(index),
                };
                if let Some(fault) = machine.state.fault() {
                    // The state is wrong from this entry on: stop the group
                    // (it reopens from its snapshot and log) rather than
                    // answer from it.
                    return Err(io::Error::other(fault));
                }
                outcome
            };
            self.shared.applied.send_modify(|n| *n += 1);
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let state: M = serde_json::from_slice(&data).map_err(io::Error::other)?;
        self.snapshots.save(meta, &data)?;
        {
            let mut machine = self.shared.lock();
            machine.state.restore(state);
            machine.state.opened()?;
            machine.last_applied = meta.last_log_id.clone();
            machine.membership = meta.last_membership.clone();
        }
        self.covered(meta);
        self.shared.applied.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<C, Self::SnapshotData>>, io::Error> {
        Ok(self
            .snapshots
            .load_latest::<SnapshotMetaOf<C>>()?
            .map(|(meta, data)| SnapshotOf::<C, _> {
                meta,
                snapshot: Cursor::new(data),
            }))
    }
}

//! openraft's state machine for a stream partition group: decodes each
//! committed entry ([`super::codec`]), applies its command to the
//! `PartitionState` at the entry's index, and answers through the entry's
//! responder.
//!
//! openraft's state machine worker is the only writer. Request handlers read
//! through a [`PartitionView`] (locked briefly, never across an `.await`)
//! and long-poll on its watch channel, bumped after every applied entry.
//!
//! Partition 0 also hosts the stream's consumer groups: its machine holds a
//! `GroupCoordinator` that applies the group commands of its log.

use std::io::{self, Cursor};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use sluice_storage::raft::{Records, SnapshotStore};
use sluice_stream::{GroupApplied, GroupCoordinator, PartitionReply, PartitionState, StreamError};
use tokio::sync::watch;

use super::codec::{EntryCommand, decode_command};
use crate::raft::StreamConfig;

/// Why an entry produced no partition reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    /// The partition refused the command (sequence gap, fenced producer, ...).
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("entry is not a partition command: {0}")]
    Undecodable(String),
    /// Blank and membership entries carry no command.
    #[error("entry carries no command")]
    NoCommand,
    /// A consumer-group command in the log of a partition other than 0.
    #[error("this partition does not coordinate consumer groups")]
    NotCoordinator,
}

/// What an applied entry answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EntryReply {
    Partition(PartitionReply),
    Group(GroupApplied),
}

/// The response of one applied entry.
pub type PartitionOutcome = Result<EntryReply, ApplyError>;

/// The replicated state of one partition group (also its snapshot).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartitionMachine {
    pub partition: PartitionState,
    /// Partition 0 only: the stream's consumer groups.
    #[serde(default)]
    pub coordinator: Option<GroupCoordinator>,
}

/// Applies one entry's records to the partition (or the group
/// coordinator): the adapter's whole logic.
pub fn apply_records(
    machine: &mut PartitionMachine,
    log_index: u64,
    records: &Records,
) -> PartitionOutcome {
    match decode_command(records) {
        Ok(EntryCommand::Partition(command)) => Ok(EntryReply::Partition(
            machine.partition.apply(log_index, command)?,
        )),
        Ok(EntryCommand::Group(command)) => {
            machine.partition.skip(log_index)?;
            match &mut machine.coordinator {
                Some(coordinator) => Ok(EntryReply::Group(coordinator.apply(log_index, command))),
                None => Err(ApplyError::NotCoordinator),
            }
        }
        Err(err) => {
            machine.partition.skip(log_index)?;
            Err(ApplyError::Undecodable(err.to_string()))
        }
    }
}

struct Machine {
    partition: PartitionMachine,
    last_applied: Option<LogIdOf<StreamConfig>>,
    membership: StoredMembershipOf<StreamConfig>,
}

struct Shared {
    machine: Mutex<Machine>,
    /// Bumped after every applied entry (long-polling fetches wait on it).
    applied: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Read-only access to a group's partition state.
#[derive(Clone)]
pub struct PartitionView {
    shared: Arc<Shared>,
}

impl PartitionView {
    /// Runs `read` on the current state (briefly locked).
    pub fn read<T>(&self, read: impl FnOnce(&PartitionState) -> T) -> T {
        read(&self.shared.lock().partition.partition)
    }

    /// Runs `read` on the stream's group coordinator, if this partition hosts it.
    pub fn coordinator<T>(&self, read: impl FnOnce(&GroupCoordinator) -> T) -> Option<T> {
        self.shared.lock().partition.coordinator.as_ref().map(read)
    }

    /// A receiver that changes whenever entries were applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }
}

/// The state machine openraft drives.
#[derive(Clone)]
pub struct PartitionStateMachine {
    shared: Arc<Shared>,
    snapshots: SnapshotStore,
}

impl PartitionStateMachine {
    /// The partition as of its newest snapshot in `dir` (openraft then
    /// applies the log after it), or an empty partition; `coordinator` is
    /// the group coordinator partition 0 starts with.
    pub fn open(dir: &Path, coordinator: Option<GroupCoordinator>) -> sluice_storage::Result<Self> {
        let snapshots = SnapshotStore::open(dir)?;
        let mut machine = Machine {
            partition: PartitionMachine {
                partition: PartitionState::new(),
                coordinator,
            },
            last_applied: None,
            membership: StoredMembershipOf::<StreamConfig>::default(),
        };
        if let Some((meta, data)) = snapshots.load_latest::<SnapshotMetaOf<StreamConfig>>()? {
            machine.partition = serde_json::from_slice(&data)
                .map_err(|e| sluice_storage::Error::Decode(format!("partition snapshot: {e}")))?;
            machine.last_applied = meta.last_log_id;
            machine.membership = meta.last_membership;
        }
        let (applied, _) = watch::channel(0);
        Ok(PartitionStateMachine {
            shared: Arc::new(Shared {
                machine: Mutex::new(machine),
                applied,
            }),
            snapshots,
        })
    }

    pub fn view(&self) -> PartitionView {
        PartitionView {
            shared: self.shared.clone(),
        }
    }
}

impl RaftSnapshotBuilder<StreamConfig> for PartitionStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<StreamConfig, Cursor<Vec<u8>>>, io::Error> {
        let (meta, data) = {
            let machine = self.shared.lock();
            let meta = SnapshotMetaOf::<StreamConfig> {
                last_log_id: machine.last_applied,
                last_membership: machine.membership.clone(),
            };
            (
                meta,
                serde_json::to_vec(&machine.partition).map_err(io::Error::other)?,
            )
        };
        self.snapshots.save(&meta, &data)?;
        Ok(SnapshotOf::<StreamConfig, _> {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<StreamConfig> for PartitionStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogIdOf<StreamConfig>>,
            StoredMembershipOf<StreamConfig>,
        ),
        io::Error,
    > {
        let machine = self.shared.lock();
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<StreamConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let outcome = {
                let mut machine = self.shared.lock();
                machine.last_applied = Some(entry.log_id);
                let index = entry.log_id.index;
                match &entry.payload {
                    EntryPayload::Normal(records) => {
                        apply_records(&mut machine.partition, index, records)
                    }
                    EntryPayload::Blank => machine
                        .partition
                        .partition
                        .skip(index)
                        .map_err(ApplyError::from)
                        .and(Err(ApplyError::NoCommand)),
                    EntryPayload::Membership(membership) => {
                        machine.membership = StoredMembershipOf::<StreamConfig>::new(
                            Some(entry.log_id),
                            membership.clone(),
                        );
                        machine
                            .partition
                            .partition
                            .skip(index)
                            .map_err(ApplyError::from)
                            .and(Err(ApplyError::NoCommand))
                    }
                }
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
        meta: &SnapshotMetaOf<StreamConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let partition: PartitionMachine =
            serde_json::from_slice(&data).map_err(io::Error::other)?;
        self.snapshots.save(meta, &data)?;
        {
            let mut machine = self.shared.lock();
            machine.partition = partition;
            machine.last_applied = meta.last_log_id;
            machine.membership = meta.last_membership.clone();
        }
        self.shared.applied.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<StreamConfig, Self::SnapshotData>>, io::Error> {
        Ok(self
            .snapshots
            .load_latest::<SnapshotMetaOf<StreamConfig>>()?
            .map(|(meta, data)| SnapshotOf::<StreamConfig, _> {
                meta,
                snapshot: Cursor::new(data),
            }))
    }
}

#[cfg(test)]
mod tests {
    use sluice_storage::Record;
    use sluice_stream::{Command, TimedCommand};

    use super::*;
    use crate::stream::codec::encode_entry;

    fn produce(values: &[&str]) -> Records {
        let command = TimedCommand::new(
            10,
            Command::Produce {
                record_count: values.len() as u32,
                producer: None,
            },
        );
        encode_entry(
            &command,
            values.iter().map(|v| Record::from_value(*v)).collect(),
        )
        .unwrap()
    }

    #[test]
    fn produced_batches_get_dense_offsets_located_in_their_entries() {
        let mut machine = PartitionMachine::default();
        let first = apply_records(&mut machine, 3, &produce(&["a", "b"]));
        assert!(
            matches!(first, Ok(EntryReply::Partition(PartitionReply::Produced(r))) if r.base_offset == 0)
        );
        machine.partition.skip(4).unwrap();
        let second = apply_records(&mut machine, 5, &produce(&["c"]));
        assert!(
            matches!(second, Ok(EntryReply::Partition(PartitionReply::Produced(r))) if r.base_offset == 2)
        );
        let partition = &machine.partition;
        assert_eq!(partition.locate(1), Some((3, 1)));
        assert_eq!(partition.locate(2), Some((5, 0)));
        assert_eq!(partition.high_watermark(), 3);
    }

    #[test]
    fn an_undecodable_entry_appends_nothing() {
        let mut machine = PartitionMachine::default();
        let garbage = Records(vec![Record::from_value("not json")]);
        let outcome = apply_records(&mut machine, 3, &garbage);
        assert!(matches!(outcome, Err(ApplyError::Undecodable(_))));
        assert_eq!(machine.partition.end_offset(), 0);
        assert_eq!(machine.partition.applied_index(), 3);
    }

    #[test]
    fn group_commands_go_to_the_coordinator_of_partition_0_only() {
        use sluice_stream::{AssignmentStrategy, GroupCommand, GroupReply};
        let join = crate::stream::codec::encode_group_entry(&TimedCommand::new(
            1,
            GroupCommand::Join {
                group: "g".into(),
                member_id: None,
                client_id: "c".into(),
                session_timeout_ms: 10_000,
                strategy: AssignmentStrategy::Range,
            },
        ))
        .unwrap();
        let mut zero = PartitionMachine {
            partition: PartitionState::new(),
            coordinator: Some(GroupCoordinator::new(2)),
        };
        let joined = apply_records(&mut zero, 2, &join);
        let Ok(EntryReply::Group(GroupApplied {
            result: Ok(GroupReply::Joined { assignment, .. }),
            ..
        })) = joined
        else {
            panic!("{joined:?}");
        };
        assert_eq!(assignment, vec![0, 1]);
        assert_eq!(zero.partition.applied_index(), 2);
        let mut one = PartitionMachine::default();
        assert_eq!(
            apply_records(&mut one, 2, &join),
            Err(ApplyError::NotCoordinator)
        );
    }
}

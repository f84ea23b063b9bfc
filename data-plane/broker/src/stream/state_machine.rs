//! A stream partition group's replicated state, behind the shared openraft
//! adapter ([`crate::raft::state_machine`]): each committed entry is decoded
//! ([`super::codec`]) and its command applied to the `PartitionState` at the
//! entry's index. Request handlers read through a [`PartitionView`] and
//! long-poll on its watch channel, bumped after every applied entry.
//!
//! Partition 0 also hosts the stream's consumer groups: its machine holds a
//! `GroupCoordinator` that applies the group commands of its log.

use serde::{Deserialize, Serialize};
use sluice_storage::raft::Records;
use sluice_stream::{GroupApplied, GroupCoordinator, PartitionReply, PartitionState, StreamError};
use tokio::sync::watch;

use super::codec::{EntryCommand, decode_command};
use crate::raft::state_machine::{Replicated, ReplicatedStateMachine, View};

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

impl Replicated for PartitionMachine {
    type Outcome = PartitionOutcome;

    fn apply(&mut self, log_index: u64, records: &Records) -> PartitionOutcome {
        apply_records(self, log_index, records)
    }

    /// Blank and membership entries take a log index but no offset.
    fn apply_empty(&mut self, log_index: u64) -> PartitionOutcome {
        self.partition
            .skip(log_index)
            .map_err(ApplyError::from)
            .and(Err(ApplyError::NoCommand))
    }
}

openraft::declare_raft_types!(
    /// One stream partition group: app data is the entry's records (record 0
    /// the partition command, records 1..=n the produced records), the
    /// response is the partition's reply.
    pub PartitionRaftConfig:
        D = Records,
        R = PartitionOutcome,
);

/// openraft's state machine for a partition group.
pub type PartitionStateMachine = ReplicatedStateMachine<PartitionRaftConfig, PartitionMachine>;

/// Read-only access to a group's partition state.
#[derive(Clone)]
pub struct PartitionView(View<PartitionRaftConfig, PartitionMachine>);

impl PartitionView {
    pub fn new(view: View<PartitionRaftConfig, PartitionMachine>) -> Self {
        PartitionView(view)
    }

    /// Runs `read` on the current state (briefly locked).
    pub fn read<T>(&self, read: impl FnOnce(&PartitionState) -> T) -> T {
        self.0.read(|m| read(&m.partition))
    }

    /// Runs `read` on the stream's group coordinator, if this partition hosts it.
    pub fn coordinator<T>(&self, read: impl FnOnce(&GroupCoordinator) -> T) -> Option<T> {
        self.0.read(|m| m.coordinator.as_ref().map(read))
    }

    /// A receiver that changes whenever entries were applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
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
            result: Ok(GroupReply::Joined { view, .. }),
            ..
        })) = joined
        else {
            panic!("{joined:?}");
        };
        assert_eq!(view.assignment, vec![0, 1]);
        assert_eq!(zero.partition.applied_index(), 2);
        let mut one = PartitionMachine::default();
        assert_eq!(
            apply_records(&mut one, 2, &join),
            Err(ApplyError::NotCoordinator)
        );
    }
}

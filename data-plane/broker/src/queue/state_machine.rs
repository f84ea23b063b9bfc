//! A queue group's replicated state: `sluice_queue::QueueState` behind the
//! shared openraft adapter ([`crate::raft::state_machine`]). Each committed
//! entry is decoded ([`super::codec`]) and applied at its index.

use sluice_queue::QueueState;
use sluice_storage::raft::Records;

use super::codec::decode_command;
use super::outcome::{CommandError, CommandOutcome};
use crate::raft::state_machine::{Replicated, ReplicatedStateMachine, View};

openraft::declare_raft_types!(
    /// One queue group: app data is the entry's records (record 0 the command,
    /// records 1..=n the bodies), the response is what applying it produced.
    pub QueueRaftConfig:
        D = Records,
        R = CommandOutcome,
);

/// openraft's state machine for a queue group.
pub type QueueStateMachine = ReplicatedStateMachine<QueueRaftConfig, QueueState>;
/// Read-only access to a queue group's state.
pub type QueueView = View<QueueRaftConfig, QueueState>;

/// Applies one entry's records to the queue: the adapter's whole logic.
pub fn apply_records(queue: &mut QueueState, log_index: u64, records: &Records) -> CommandOutcome {
    match decode_command(log_index, records) {
        Ok(command) => queue.apply(log_index, command).into(),
        Err(err) => CommandOutcome::without(CommandError::Undecodable(err.to_string())),
    }
}

impl Replicated for QueueState {
    type Outcome = CommandOutcome;

    fn apply(&mut self, log_index: u64, records: &Records) -> CommandOutcome {
        apply_records(self, log_index, records)
    }

    fn apply_empty(&mut self, _log_index: u64) -> CommandOutcome {
        CommandOutcome::without(CommandError::NoCommand)
    }

    // The spilled backlog (issue 21): its directory stays this replica's
    // across a restore, is attached before the log after the snapshot is
    // applied, and its page files are durable before a snapshot names them.

    fn restore(&mut self, restored: Self) {
        self.restore_from(restored);
    }

    fn opened(&mut self) -> std::io::Result<()> {
        self.attach_spill().map_err(std::io::Error::other)
    }

    fn fault(&self) -> Option<String> {
        self.spill_fault()
    }

    fn prepare_snapshot(&self) -> std::io::Result<u64> {
        self.sync_spill().map_err(std::io::Error::other)
    }

    fn snapshot_saved(&mut self, mark: u64) {
        QueueState::snapshot_saved(self, mark);
    }
}

#[cfg(test)]
mod tests {

    use sluice_queue::{
        BodyRef, Command, PublishMessage, PublishResult, QueueSettings, Reply, TimedCommand,
    };

    use super::*;
    use crate::queue::codec::{BodyEncoding, MessageBody, encode_entry};

    fn publish_entry(bodies: &[&str]) -> Records {
        let messages = (0..bodies.len())
            .map(|i| {
                let body_ref = BodyRef {
                    log_index: 0,
                    slot: i as u32 + 1,
                };
                PublishMessage::new(body_ref, bodies[i].len() as u64)
            })
            .collect();
        let bodies = bodies
            .iter()
            .map(|b| MessageBody {
                bytes: b.as_bytes().to_vec(),
                encoding: BodyEncoding::Utf8,
                content_type: None,
            })
            .collect();
        encode_entry(
            &TimedCommand::new(10, Command::Publish { messages }),
            bodies,
        )
        .unwrap()
    }

    #[test]
    fn applying_a_publish_fills_body_refs_with_the_entry_index() {
        let mut queue = QueueState::new(QueueSettings::default());
        let outcome = apply_records(&mut queue, 5, &publish_entry(&["a", "bb"]));
        let Ok(Reply::Published { results }) = outcome.result else {
            panic!("{outcome:?}");
        };
        assert!(
            results
                .iter()
                .all(|r| matches!(r, PublishResult::Stored { .. }))
        );
        let refs: Vec<BodyRef> = queue.messages().map(|m| m.body_ref).collect();
        assert_eq!(
            refs,
            vec![
                BodyRef {
                    log_index: 5,
                    slot: 1
                },
                BodyRef {
                    log_index: 5,
                    slot: 2
                }
            ]
        );
        // A second entry points at its own index.
        apply_records(&mut queue, 9, &publish_entry(&["c"]));
        let last = queue.messages().last().map(|m| m.body_ref);
        assert_eq!(
            last,
            Some(BodyRef {
                log_index: 9,
                slot: 1
            })
        );
        assert_eq!(queue.release_cursor(), 5);
    }

    #[test]
    fn an_undecodable_entry_changes_nothing() {
        let mut queue = QueueState::new(QueueSettings::default());
        let garbage = Records(vec![sluice_storage::Record::from_value("not json")]);
        let outcome = apply_records(&mut queue, 3, &garbage);
        assert!(matches!(outcome.result, Err(CommandError::Undecodable(_))));
        assert_eq!(queue.messages().count(), 0);
    }
}

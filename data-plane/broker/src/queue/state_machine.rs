//! openraft's state machine for a queue group: decodes each committed entry
//! ([`super::codec`]), applies its command to the `QueueState` at the entry's
//! index, and answers through the entry's responder.
//!
//! openraft's state machine worker is the only writer. Request handlers read
//! (stats, peek, whether anything is ready) through a [`QueueView`], which
//! locks the state briefly and never across an `.await`, and wait for changes
//! on its watch channel (long-poll receives, the timer task).

use std::io::{self, Cursor};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use sluice_queue::{QueueSettings, QueueState};
use sluice_storage::raft::{Records, SnapshotStore};
use tokio::sync::watch;

use super::codec::decode_command;
use super::outcome::{CommandError, CommandOutcome};
use crate::raft::GroupConfig;

/// Applies one entry's records to the queue: the adapter's whole logic.
pub fn apply_records(queue: &mut QueueState, log_index: u64, records: &Records) -> CommandOutcome {
    match decode_command(log_index, records) {
        Ok(command) => queue.apply(log_index, command).into(),
        Err(err) => CommandOutcome::without(CommandError::Undecodable(err.to_string())),
    }
}

struct Machine {
    queue: QueueState,
    last_applied: Option<LogIdOf<GroupConfig>>,
    membership: StoredMembershipOf<GroupConfig>,
}

struct Shared {
    machine: Mutex<Machine>,
    /// Log index covered by the newest snapshot (0 before the first).
    snapshot_index: std::sync::atomic::AtomicU64,
    /// Bumped after every applied batch of entries.
    applied: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Read-only access to a group's queue state.
#[derive(Clone)]
pub struct QueueView {
    shared: Arc<Shared>,
}

impl QueueView {
    /// Runs `read` on the current state (briefly locked).
    pub fn read<T>(&self, read: impl FnOnce(&QueueState) -> T) -> T {
        read(&self.shared.lock().queue)
    }

    /// A receiver that changes whenever entries were applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }

    /// The log index the newest snapshot covers (0 before the first): the
    /// log below it may be purged down to the queue's release cursor.
    pub fn snapshot_index(&self) -> u64 {
        self.shared
            .snapshot_index
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The state machine openraft drives.
#[derive(Clone)]
pub struct QueueStateMachine {
    shared: Arc<Shared>,
    snapshots: SnapshotStore,
}

impl QueueStateMachine {
    /// The queue as of its newest snapshot in `dir` (openraft then applies the
    /// log after it), or an empty queue with `settings` when there is none.
    pub fn open(dir: &Path, settings: QueueSettings) -> sluice_storage::Result<Self> {
        let snapshots = SnapshotStore::open(dir)?;
        let mut machine = Machine {
            queue: QueueState::new(settings),
            last_applied: None,
            membership: StoredMembershipOf::<GroupConfig>::default(),
        };
        let mut snapshot_index = 0;
        if let Some((meta, data)) = snapshots.load_latest::<SnapshotMetaOf<GroupConfig>>()? {
            machine.queue = serde_json::from_slice(&data)
                .map_err(|e| sluice_storage::Error::Decode(format!("queue snapshot: {e}")))?;
            machine.last_applied = meta.last_log_id;
            machine.membership = meta.last_membership;
            snapshot_index = meta.last_log_id.map_or(0, |id| id.index);
        }
        let (applied, _) = watch::channel(0);
        Ok(QueueStateMachine {
            shared: Arc::new(Shared {
                machine: Mutex::new(machine),
                snapshot_index: std::sync::atomic::AtomicU64::new(snapshot_index),
                applied,
            }),
            snapshots,
        })
    }

    pub fn view(&self) -> QueueView {
        QueueView {
            shared: self.shared.clone(),
        }
    }
}

impl RaftSnapshotBuilder<GroupConfig> for QueueStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<GroupConfig, Cursor<Vec<u8>>>, io::Error> {
        let (meta, data) = {
            let machine = self.shared.lock();
            let meta = SnapshotMetaOf::<GroupConfig> {
                last_log_id: machine.last_applied,
                last_membership: machine.membership.clone(),
            };
            (
                meta,
                serde_json::to_vec(&machine.queue).map_err(io::Error::other)?,
            )
        };
        self.snapshots.save(&meta, &data)?;
        let index = meta.last_log_id.map_or(0, |id| id.index);
        self.shared
            .snapshot_index
            .store(index, std::sync::atomic::Ordering::Release);
        Ok(SnapshotOf::<GroupConfig, _> {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<GroupConfig> for QueueStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogIdOf<GroupConfig>>,
            StoredMembershipOf<GroupConfig>,
        ),
        io::Error,
    > {
        let machine = self.shared.lock();
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<GroupConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let outcome = {
                let mut machine = self.shared.lock();
                machine.last_applied = Some(entry.log_id);
                match &entry.payload {
                    EntryPayload::Blank => CommandOutcome::without(CommandError::NoCommand),
                    EntryPayload::Normal(records) => {
                        apply_records(&mut machine.queue, entry.log_id.index, records)
                    }
                    EntryPayload::Membership(membership) => {
                        machine.membership = StoredMembershipOf::<GroupConfig>::new(
                            Some(entry.log_id),
                            membership.clone(),
                        );
                        CommandOutcome::without(CommandError::NoCommand)
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
        meta: &SnapshotMetaOf<GroupConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let queue: QueueState = serde_json::from_slice(&data).map_err(io::Error::other)?;
        self.snapshots.save(meta, &data)?;
        {
            let mut machine = self.shared.lock();
            machine.queue = queue;
            machine.last_applied = meta.last_log_id;
            machine.membership = meta.last_membership.clone();
        }
        let index = meta.last_log_id.map_or(0, |id| id.index);
        self.shared
            .snapshot_index
            .store(index, std::sync::atomic::Ordering::Release);
        self.shared.applied.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<GroupConfig, Self::SnapshotData>>, io::Error> {
        Ok(self
            .snapshots
            .load_latest::<SnapshotMetaOf<GroupConfig>>()?
            .map(|(meta, data)| SnapshotOf::<GroupConfig, _> {
                meta,
                snapshot: Cursor::new(data),
            }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_queue::{BodyRef, Command, PublishMessage, PublishResult, Reply, TimedCommand};

    use super::*;
    use crate::queue::codec::{BodyEncoding, MessageBody, encode_entry};

    fn publish_entry(bodies: &[&str]) -> Records {
        let messages = (0..bodies.len())
            .map(|i| PublishMessage {
                message_id: None,
                body_ref: BodyRef {
                    log_index: 0,
                    slot: i as u32 + 1,
                },
                size: bodies[i].len() as u64,
                routing_key: String::new(),
                headers: BTreeMap::new(),
                group: None,
                delay_ms: None,
                expiration_ms: None,
                priority: None,
                deaths: Vec::new(),
                republished: false,
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

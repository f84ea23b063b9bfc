//! Consumer groups: one [`GroupCoordinator`] per stream holds every group's
//! members, generation, assignment and committed offsets. Its commands
//! travel through the log of a designated partition (partition 0), so the
//! coordinator is replicated and fails over with that partition's leader.
//!
//! - [`membership`]: join, rejoin, heartbeat, leave, session expiry;
//! - [`assignment`]: `range` / `round-robin` with a cooperative rebalance;
//! - [`offsets`]: commit, seek, lag.
//!
//! Every membership change bumps the group's generation and rebalances —
//! once per log entry: members expelled by expiry at the start of an entry
//! and the entry's own join or leave make one rebalance.
//! Heartbeats and commits name the generation they act in; a stale one is
//! fenced (`StaleGeneration`) and the member rejoins with its member id to
//! learn the new generation and assignment — its unchanged partitions stay
//! its own, so it keeps consuming them. Groups are independent of one
//! another: a command names its group and touches nothing else.
//!
//! # Incremental cooperative rebalance (revoke, then assign)
//!
//! A partition moves from one live member to another in two steps, so no
//! two members ever hold it at once, whatever their view's age:
//!
//! ```text
//!                 membership change (generation G+1): target owner is B
//!   owned by A ─────────────────────────────────────────────────────────┐
//!      ▲  (target = A again: back to A, nobody else held it)            ▼
//!      └──────────────────────────────────── pending revocation (from A, to B)
//!                                             │ A heartbeats in G+1 or later: released
//!                                             │ A leaves or its session runs out: released
//!                                             ▼ (another change re-targets `to`, never `from`)
//!                                           owned by B   (same generation: a gain needs no fence)
//! ```
//!
//! - Owned: the member consumes and commits it. Partitions whose target
//!   owner is their owner are never revoked: they stay put through any
//!   number of rebalances.
//! - Pending revocation: nobody may fetch it; the losing member `from`
//!   still *holds* it — its answers list it in `revoked` — so it may commit
//!   where it got to (current generation) before it lets go. Its next
//!   heartbeat in the current generation is the acknowledgement: the member
//!   only learns the generation by rejoining (whose answer lists the
//!   revocation), so a heartbeat carrying it proves the member has seen it.
//!   A rejoin is not an acknowledgement: its answer has not reached the
//!   member yet. Each losing member releases its own partitions — there is
//!   no need to wait for the slowest (Kafka's second join round exists
//!   because its assignment is computed by a client; here the coordinator
//!   holds every view).
//! - A partition with no live holder (fresh, grown, or its owner left or
//!   expired) goes straight to its target owner.
//!
//! The release does not bump the generation: it only adds partitions to a
//! member, and fencing is needed only when a right is taken away. The
//! gaining member learns of the partition (and its committed offset) from
//! its next heartbeat answer; `rebalance_in_progress` is true while the
//! group has pending revocations, telling members to keep heartbeating
//! promptly. Commits are accepted only from a partition's holder (owner,
//! or the losing member while pending) in the current generation.

mod assignment;
mod membership;
mod offsets;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use assignment::AssignmentStrategy;
pub use offsets::{PartitionBounds, SeekTarget};

use crate::command::{GroupCommand, TimedCommand};
use crate::error::StreamError;
use crate::{GroupId, LogIndex, Offset, PartitionId};

/// A group member's id, assigned by the coordinator: `<client id>-<n>`, `n`
/// counting the group's joins (deterministic on every replica).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub String);

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MemberId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// One member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub client_id: String,
    pub session_timeout_ms: u64,
    pub last_heartbeat_ms: u64,
    /// Join order: the strategies lay partitions out over members in it.
    pub join_seq: u64,
}

/// A partition on its way from `from` (who still holds it until it
/// acknowledges) to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub from: MemberId,
    pub to: MemberId,
}

/// What one member holds, as its join and heartbeat answers tell it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberView {
    /// The partitions it owns: fetch and commit them.
    pub assignment: Vec<PartitionId>,
    /// Revoked from it: stop fetching, commit where it got to, then
    /// heartbeat (in the current generation) to hand them on.
    pub revoked: Vec<PartitionId>,
    /// The group has pending revocations: partitions are still moving.
    pub rebalance_in_progress: bool,
}

/// One consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerGroup {
    strategy: AssignmentStrategy,
    generation: u64,
    next_join_seq: u64,
    members: BTreeMap<MemberId, Member>,
    /// Owned partitions: the member may fetch and commit them.
    assignment: BTreeMap<PartitionId, MemberId>,
    /// Partitions revoked from a live member that has not acknowledged it
    /// yet: owned by nobody (never in `assignment`).
    #[serde(default)]
    pending: BTreeMap<PartitionId, Revocation>,
    committed: BTreeMap<PartitionId, Offset>,
    /// Membership (or the partition count) changed in the entry being
    /// applied: rebalance before the entry ends. Always false between
    /// entries, so it is not part of the snapshot.
    #[serde(skip)]
    changed: bool,
}

impl ConsumerGroup {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn strategy(&self) -> AssignmentStrategy {
        self.strategy
    }

    pub fn members(&self) -> &BTreeMap<MemberId, Member> {
        &self.members
    }

    /// The owner of `partition` in the current generation.
    pub fn owner(&self, partition: PartitionId) -> Option<&MemberId> {
        self.assignment.get(&partition)
    }

    /// Partition → owner, for every owned partition.
    pub fn assignment(&self) -> &BTreeMap<PartitionId, MemberId> {
        &self.assignment
    }

    /// The partitions `member` owns, ascending.
    pub fn assignment_of(&self, member: &MemberId) -> Vec<PartitionId> {
        self.assignment
            .iter()
            .filter(|(_, m)| *m == member)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Partitions pending revocation, with who holds them and who gets them.
    pub fn pending(&self) -> &BTreeMap<PartitionId, Revocation> {
        &self.pending
    }

    /// The partitions revoked from `member` that it has not released yet.
    pub fn revoked_from(&self, member: &MemberId) -> Vec<PartitionId> {
        self.pending
            .iter()
            .filter(|(_, r)| &r.from == member)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether partitions are still moving (some revocation is pending).
    pub fn rebalance_in_progress(&self) -> bool {
        !self.pending.is_empty()
    }

    /// What `member` holds now, as its answers carry it.
    pub fn view_of(&self, member: &MemberId) -> MemberView {
        MemberView {
            assignment: self.assignment_of(member),
            revoked: self.revoked_from(member),
            rebalance_in_progress: self.rebalance_in_progress(),
        }
    }

    /// Where every partition is headed: its owner, or the member a pending
    /// revocation hands it to.
    pub fn target(&self) -> BTreeMap<PartitionId, MemberId> {
        let mut target = self.assignment.clone();
        target.extend(self.pending.iter().map(|(p, r)| (*p, r.to.clone())));
        target
    }

    /// Whether `member` may commit `partition`: its owner, or the member it
    /// is being revoked from (which may record where it got to until it
    /// lets go).
    pub(crate) fn holds(&self, member: &MemberId, partition: PartitionId) -> bool {
        self.assignment.get(&partition) == Some(member)
            || self
                .pending
                .get(&partition)
                .is_some_and(|r| &r.from == member)
    }

    /// `member` acknowledged the current generation: what was revoked from
    /// it goes to its new owners.
    pub(crate) fn release(&mut self, member: &MemberId) {
        let released: Vec<PartitionId> = self.revoked_from(member);
        for p in released {
            if let Some(r) = self.pending.remove(&p) {
                self.assignment.insert(p, r.to);
            }
        }
    }

    /// The committed offset (the next record to consume) of `partition`.
    pub fn committed(&self, partition: PartitionId) -> Option<Offset> {
        self.committed.get(&partition).copied()
    }

    pub fn committed_offsets(&self) -> &BTreeMap<PartitionId, Offset> {
        &self.committed
    }

    /// Members in join order.
    fn ordered_members(&self) -> Vec<MemberId> {
        let mut members: Vec<(&u64, &MemberId)> = self
            .members
            .iter()
            .map(|(id, m)| (&m.join_seq, id))
            .collect();
        members.sort();
        members.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// Rebalances if anything changed in this entry: next generation, a
    /// cooperative target, and the revoke step of every partition whose
    /// live holder is not its target owner (see the module doc).
    fn settle(&mut self, partitions: u32) {
        if !std::mem::take(&mut self.changed) {
            return;
        }
        self.generation += 1;
        // Sticky to where partitions are headed, so a partition in flight
        // is not bounced back and forth by a second change.
        let target = assignment::rebalance(
            self.strategy,
            partitions,
            &self.ordered_members(),
            &self.target(),
        );
        let mut holders: BTreeMap<PartitionId, MemberId> = self.assignment.clone();
        holders.extend(self.pending.iter().map(|(p, r)| (*p, r.from.clone())));
        let mut owned = BTreeMap::new();
        let mut pending = BTreeMap::new();
        for (p, to) in target {
            match holders.remove(&p).filter(|h| self.members.contains_key(h)) {
                Some(from) if from != to => {
                    pending.insert(p, Revocation { from, to });
                }
                _ => {
                    owned.insert(p, to);
                }
            }
        }
        self.assignment = owned;
        self.pending = pending;
    }
}

/// The answer to an applied group command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GroupReply {
    /// Joined or rejoined: the member's generation and partitions.
    Joined {
        member_id: MemberId,
        generation: u64,
        view: MemberView,
    },
    /// The session is alive and the generation current (which acknowledges
    /// the member's revocations).
    HeartbeatOk {
        generation: u64,
        view: MemberView,
    },
    Left {
        generation: u64,
    },
    Committed {
        generation: u64,
    },
    /// The group's committed offsets after the seek.
    Seeked {
        generation: u64,
        #[serde(with = "crate::partition_map")]
        offsets: BTreeMap<PartitionId, Offset>,
    },
    Deleted,
    PartitionCount {
        partitions: u32,
    },
    Ticked,
}

/// The outcome of one group command: its answer, and the members expelled
/// because their session ran out before it (expiry runs first, whatever the
/// command, and stands even when the command fails).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupApplied {
    pub result: Result<GroupReply, StreamError>,
    pub expired: Vec<(GroupId, MemberId)>,
}

/// The replicated consumer-group state of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCoordinator {
    applied_index: LogIndex,
    /// Highest `now_ms` applied: time never runs backwards here.
    clock_ms: u64,
    partitions: u32,
    groups: BTreeMap<GroupId, ConsumerGroup>,
}

impl GroupCoordinator {
    /// The coordinator of a stream with `partitions` partitions.
    pub fn new(partitions: u32) -> Self {
        Self {
            applied_index: 0,
            clock_ms: 0,
            partitions,
            groups: BTreeMap::new(),
        }
    }

    /// Applies the group command of the committed entry at `log_index`.
    pub fn apply(
        &mut self,
        log_index: LogIndex,
        command: TimedCommand<GroupCommand>,
    ) -> GroupApplied {
        if log_index <= self.applied_index {
            return GroupApplied {
                result: Err(StreamError::LogIndexRegressed {
                    applied: self.applied_index,
                    got: log_index,
                }),
                expired: Vec::new(),
            };
        }
        self.applied_index = log_index;
        self.clock_ms = self.clock_ms.max(command.now_ms);
        let expired = self.expire();
        // A join or leave folds the expiry of its own group into its one
        // rebalance; every other command sees the expiries settled first.
        let deferred = match &command.command {
            GroupCommand::Join {
                group,
                member_id: None,
                ..
            }
            | GroupCommand::Leave { group, .. } => Some(group.clone()),
            _ => None,
        };
        let partitions = self.partitions;
        for (name, g) in &mut self.groups {
            if deferred.as_ref() != Some(name) {
                g.settle(partitions);
            }
        }
        let result = match command.command {
            GroupCommand::Join {
                group,
                member_id,
                client_id,
                session_timeout_ms,
                strategy,
            } => self.join(group, member_id, client_id, session_timeout_ms, strategy),
            GroupCommand::Heartbeat {
                group,
                member_id,
                generation,
            } => self.heartbeat(&group, &member_id, generation),
            GroupCommand::Leave { group, member_id } => self.leave(&group, &member_id),
            GroupCommand::Commit {
                group,
                member_id,
                generation,
                offsets,
            } => self.commit(&group, &member_id, generation, offsets),
            GroupCommand::Seek {
                group,
                target,
                bounds,
                force,
            } => self.seek(group, target, &bounds, force),
            GroupCommand::DeleteGroup { group } => self.delete_group(&group),
            GroupCommand::SetPartitionCount { partitions } => self.set_partition_count(partitions),
            GroupCommand::Tick => Ok(GroupReply::Ticked),
        };
        let partitions = self.partitions;
        for g in self.groups.values_mut() {
            g.settle(partitions);
        }
        GroupApplied { result, expired }
    }

    pub fn group(&self, group: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group)
    }

    pub fn groups(&self) -> &BTreeMap<GroupId, ConsumerGroup> {
        &self.groups
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions
    }

    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    fn group_mut(&mut self, group: &str) -> Result<&mut ConsumerGroup, StreamError> {
        self.groups
            .get_mut(group)
            .ok_or_else(|| StreamError::UnknownGroup(group.to_owned()))
    }

    fn delete_group(&mut self, group: &str) -> Result<GroupReply, StreamError> {
        let g = self.group_mut(group)?;
        if !g.members.is_empty() {
            return Err(StreamError::GroupNotEmpty {
                group: group.to_owned(),
                members: g.members.len(),
            });
        }
        self.groups.remove(group);
        Ok(GroupReply::Deleted)
    }

    fn set_partition_count(&mut self, partitions: u32) -> Result<GroupReply, StreamError> {
        if partitions < self.partitions {
            return Err(StreamError::PartitionCountShrink {
                current: self.partitions,
                requested: partitions,
            });
        }
        if partitions > self.partitions {
            self.partitions = partitions;
            for g in self.groups.values_mut().filter(|g| !g.members.is_empty()) {
                g.changed = true;
            }
        }
        Ok(GroupReply::PartitionCount { partitions })
    }
}

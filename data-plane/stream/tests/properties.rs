//! Property tests: the invariants of both state machines under random
//! command sequences.
//!
//! - partition: offsets are dense and monotonic, every live offset is
//!   locatable in log order, retries answer with the original offsets;
//! - groups: every partition has at most one holder (owner, or the live
//!   member a pending revocation takes it from); a partition never passes
//!   from one live member to another in one step; with members, every
//!   partition is headed somewhere and the target split is balanced; under
//!   a rebalance a member that stays keeps as many of its target partitions
//!   as its new share allows (`|old ∩ new| = min(|old|, |new|)`);
//! - both: restoring a snapshot and replaying the rest equals replaying all.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_stream::{
    AssignmentStrategy, Command, GroupCommand, GroupCoordinator, GroupReply, MemberId,
    PartitionBounds, PartitionReply, PartitionState, ProducerBatch, SeekTarget, TimedCommand,
};

#[derive(Debug, Clone)]
enum PartitionOp {
    Produce {
        records: u32,
        producer: Option<(u64, u32, u64)>,
    },
    /// Retain from this fraction (per mille) of the way to the end.
    Retain(u64),
    /// A log entry for some other state machine.
    Skip,
    ExpireProducers(u64),
}

fn partition_op() -> impl Strategy<Value = PartitionOp> {
    prop_oneof![
        (1u32..4).prop_map(|records| PartitionOp::Produce {
            records,
            producer: None
        }),
        (1u32..3, 0u64..2, 0u32..2, 0u64..8).prop_map(|(records, pid, epoch, seq)| {
            PartitionOp::Produce {
                records,
                producer: Some((pid, epoch, seq)),
            }
        }),
        (0u64..=1000).prop_map(PartitionOp::Retain),
        Just(PartitionOp::Skip),
        (0u64..200).prop_map(PartitionOp::ExpireProducers),
    ]
}

fn to_command(state: &PartitionState, op: &PartitionOp) -> Option<Command> {
    match *op {
        PartitionOp::Produce { records, producer } => Some(Command::Produce {
            record_count: records,
            producer: producer.map(|(producer_id, epoch, base_sequence)| ProducerBatch {
                producer_id,
                epoch,
                base_sequence,
            }),
        }),
        PartitionOp::Retain(per_mille) => {
            let (lo, hi) = (state.earliest_offset(), state.end_offset());
            Some(Command::Retain {
                earliest_offset: lo + (hi - lo) * per_mille / 1000,
            })
        }
        PartitionOp::ExpireProducers(idle_ms) => Some(Command::ExpireProducers { idle_ms }),
        PartitionOp::Skip => None,
    }
}

type PartitionOutcome = Option<Result<PartitionReply, sluice_stream::StreamError>>;

fn apply_partition(state: &mut PartitionState, index: u64, op: &PartitionOp) -> PartitionOutcome {
    match to_command(state, op) {
        Some(command) => Some(state.apply(index, TimedCommand::new(index * 10, command))),
        None => {
            state.skip(index).unwrap();
            None
        }
    }
}

proptest! {
    #[test]
    fn partition_offsets_are_dense_and_monotonic(ops in prop::collection::vec(partition_op(), 1..60)) {
        let mut state = PartitionState::new();
        // (producer, epoch, base sequence, records) → base offset of appended batches.
        let mut written: BTreeMap<(u64, u32, u64, u32), u64> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            let index = i as u64 + 1;
            let end_before = state.end_offset();
            let earliest_before = state.earliest_offset();
            let outcome = apply_partition(&mut state, index, op);
            if let Some(Ok(PartitionReply::Produced(r))) = outcome {
                let PartitionOp::Produce { records, producer } = *op else { unreachable!() };
                if r.duplicate {
                    let (pid, epoch, seq) = producer.unwrap();
                    prop_assert_eq!(written.get(&(pid, epoch, seq, records)), Some(&r.base_offset));
                    prop_assert_eq!(state.end_offset(), end_before);
                } else {
                    prop_assert_eq!(r.base_offset, end_before);
                    prop_assert_eq!(r.log_index, index);
                    prop_assert_eq!(state.end_offset(), end_before + u64::from(records));
                    if let Some((pid, epoch, seq)) = producer {
                        written.insert((pid, epoch, seq, records), r.base_offset);
                    }
                }
            } else {
                prop_assert_eq!(state.end_offset(), end_before);
            }
            prop_assert!(state.earliest_offset() >= earliest_before);
            prop_assert!(state.earliest_offset() <= state.end_offset());
            // Every live offset is locatable, in log order, slots counting up.
            let mut last: Option<(u64, u32)> = None;
            for offset in state.earliest_offset()..state.end_offset() {
                let here = state.locate(offset);
                prop_assert!(here.is_some(), "offset {} not locatable", offset);
                let here = here.unwrap();
                if let Some((index, slot)) = last {
                    prop_assert!(here.0 > index || (here.0 == index && here.1 == slot + 1));
                    prop_assert!(here.0 != index || here.1 == slot + 1);
                }
                last = Some(here);
            }
            prop_assert_eq!(state.locate(state.end_offset()), None);
        }
    }

    #[test]
    fn partition_snapshot_then_replay_equals_replay(
        ops in prop::collection::vec(partition_op(), 1..40),
        split in 0usize..40,
    ) {
        let split = split.min(ops.len());
        let mut full = PartitionState::new();
        let full_outcomes: Vec<PartitionOutcome> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| apply_partition(&mut full, i as u64 + 1, op))
            .collect();
        let mut head = PartitionState::new();
        for (i, op) in ops[..split].iter().enumerate() {
            apply_partition(&mut head, i as u64 + 1, op);
        }
        let json = serde_json::to_string(&head).unwrap();
        let mut restored: PartitionState = serde_json::from_str(&json).unwrap();
        for (i, op) in ops.iter().enumerate().skip(split) {
            let outcome = apply_partition(&mut restored, i as u64 + 1, op);
            prop_assert_eq!(&outcome, &full_outcomes[i]);
        }
        prop_assert_eq!(restored, full);
    }
}

const GROUPS: [&str; 2] = ["g1", "g2"];
const SESSION_MS: u64 = 10_000;

#[derive(Debug, Clone)]
enum GroupOp {
    Join {
        group: usize,
        round_robin: bool,
    },
    Leave {
        group: usize,
        member: usize,
    },
    Heartbeat {
        group: usize,
        member: usize,
    },
    Commit {
        group: usize,
        member: usize,
        partition: u32,
        offset: u64,
    },
    Grow(u32),
    ForceSeek {
        group: usize,
    },
    Tick,
}

fn group_op() -> impl Strategy<Value = GroupOp> {
    prop_oneof![
        3 => (0..GROUPS.len(), any::<bool>()).prop_map(|(group, round_robin)| GroupOp::Join { group, round_robin }),
        1 => (0..GROUPS.len(), 0usize..8).prop_map(|(group, member)| GroupOp::Leave { group, member }),
        3 => (0..GROUPS.len(), 0usize..8).prop_map(|(group, member)| GroupOp::Heartbeat { group, member }),
        2 => (0..GROUPS.len(), 0usize..8, 0u32..8, 0u64..100)
            .prop_map(|(group, member, partition, offset)| GroupOp::Commit { group, member, partition, offset }),
        1 => (0u32..3).prop_map(GroupOp::Grow),
        1 => (0..GROUPS.len()).prop_map(|group| GroupOp::ForceSeek { group }),
        1 => Just(GroupOp::Tick),
    ]
}

/// Replays ops with their own clock; member ids are learned from replies so
/// indexes pick among every member ever joined (including gone ones).
struct GroupDriver {
    coordinator: GroupCoordinator,
    index: u64,
    known: Vec<Vec<MemberId>>,
}

impl GroupDriver {
    fn new(coordinator: GroupCoordinator) -> Self {
        Self {
            coordinator,
            index: 0,
            known: vec![Vec::new(); GROUPS.len()],
        }
    }

    fn member(&self, group: usize, i: usize) -> MemberId {
        let known = &self.known[group];
        if known.is_empty() {
            MemberId::from("nobody")
        } else {
            known[i % known.len()].clone()
        }
    }

    fn command(&self, op: &GroupOp) -> GroupCommand {
        let current = |g: usize| {
            self.coordinator
                .group(GROUPS[g])
                .map(|g| g.generation())
                .unwrap_or(0)
        };
        match *op {
            GroupOp::Join { group, round_robin } => GroupCommand::Join {
                group: GROUPS[group].into(),
                member_id: None,
                client_id: "c".into(),
                session_timeout_ms: SESSION_MS,
                strategy: if round_robin {
                    AssignmentStrategy::RoundRobin
                } else {
                    AssignmentStrategy::Range
                },
            },
            GroupOp::Leave { group, member } => GroupCommand::Leave {
                group: GROUPS[group].into(),
                member_id: self.member(group, member),
            },
            GroupOp::Heartbeat { group, member } => GroupCommand::Heartbeat {
                group: GROUPS[group].into(),
                member_id: self.member(group, member),
                generation: current(group),
            },
            GroupOp::Commit {
                group,
                member,
                partition,
                offset,
            } => GroupCommand::Commit {
                group: GROUPS[group].into(),
                member_id: self.member(group, member),
                generation: current(group),
                offsets: BTreeMap::from([(partition, offset)]),
            },
            GroupOp::Grow(by) => GroupCommand::SetPartitionCount {
                partitions: self.coordinator.partition_count() + by,
            },
            GroupOp::ForceSeek { group } => GroupCommand::Seek {
                group: GROUPS[group].into(),
                target: SeekTarget::Earliest,
                bounds: (0..self.coordinator.partition_count())
                    .map(|p| {
                        (
                            p,
                            PartitionBounds {
                                earliest: 0,
                                end: 100,
                            },
                        )
                    })
                    .collect(),
                force: true,
            },
            GroupOp::Tick => GroupCommand::Tick,
        }
    }

    fn apply(&mut self, now_ms: u64, op: &GroupOp) -> sluice_stream::GroupApplied {
        let command = self.command(op);
        self.index += 1;
        let applied = self
            .coordinator
            .apply(self.index, TimedCommand::new(now_ms, command));
        if let (GroupOp::Join { group, .. }, Ok(GroupReply::Joined { member_id, .. })) =
            (op, &applied.result)
        {
            self.known[*group].push(member_id.clone());
        }
        applied
    }
}

/// Where each member's partitions are headed (owned, or pending to it).
fn owned_by(coordinator: &GroupCoordinator, group: &str) -> BTreeMap<MemberId, Vec<u32>> {
    let mut out: BTreeMap<MemberId, Vec<u32>> = BTreeMap::new();
    if let Some(g) = coordinator.group(group) {
        for id in g.members().keys() {
            out.insert(id.clone(), Vec::new());
        }
        for (p, m) in g.target() {
            out.entry(m).or_default().push(p);
        }
    }
    out
}

/// Partition → the member holding it now (owner or revoking member).
fn holders(coordinator: &GroupCoordinator, group: &str) -> BTreeMap<u32, MemberId> {
    let mut out = BTreeMap::new();
    if let Some(g) = coordinator.group(group) {
        for id in g.members().keys() {
            let view = g.view_of(id);
            for p in view.assignment.into_iter().chain(view.revoked) {
                assert!(
                    out.insert(p, id.clone()).is_none(),
                    "partition {p} held twice"
                );
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn group_assignment_invariants(
        initial in 0u32..7,
        steps in prop::collection::vec((0u64..6_000, group_op()), 1..80),
    ) {
        let mut d = GroupDriver::new(GroupCoordinator::new(initial));
        let mut now = 0;
        for (delta, op) in &steps {
            now += delta;
            let before: Vec<_> = GROUPS.iter().map(|g| owned_by(&d.coordinator, g)).collect();
            let owned_before: Vec<BTreeMap<u32, MemberId>> = GROUPS
                .iter()
                .map(|g| d.coordinator.group(g).map(|g| g.assignment().clone()).unwrap_or_default())
                .collect();
            let generations: Vec<u64> = GROUPS
                .iter()
                .map(|g| d.coordinator.group(g).map(|g| g.generation()).unwrap_or(0))
                .collect();
            d.apply(now, op);
            let partitions = d.coordinator.partition_count();
            for (gi, name) in GROUPS.iter().enumerate() {
                let Some(g) = d.coordinator.group(name) else { continue };
                prop_assert!(g.generation() >= generations[gi]);
                // At most one owner per partition (a map), and a live one;
                // a pending partition is owned by nobody, between live members.
                for (p, owner) in g.assignment() {
                    prop_assert!(*p < partitions);
                    prop_assert!(g.members().contains_key(owner));
                    prop_assert!(!g.pending().contains_key(p));
                }
                for r in g.pending().values() {
                    prop_assert!(g.members().contains_key(&r.from));
                    prop_assert!(g.members().contains_key(&r.to));
                    prop_assert!(r.from != r.to);
                }
                // Revoke before assign: a partition a live member owned is
                // still held by it one step later (owned, or revoked from it
                // until its next heartbeat lets go).
                let held = holders(&d.coordinator, name);
                for (p, was) in &owned_before[gi] {
                    if let Some(now) = held.get(p)
                        && now != was
                    {
                        prop_assert!(!g.members().contains_key(was), "partition {} went from live {} to {}", p, was, now);
                    }
                }
                let after = owned_by(&d.coordinator, name);
                if !g.members().is_empty() {
                    prop_assert_eq!(g.target().len() as u32, partitions);
                    let counts: Vec<usize> = after.values().map(Vec::len).collect();
                    let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                    prop_assert!(hi - lo <= 1, "unbalanced {:?}", after);
                }
                // Cooperative: survivors keep all they can.
                for (member, old) in &before[gi] {
                    if let Some(new) = after.get(member) {
                        let kept = old.iter().filter(|p| new.contains(p)).count();
                        prop_assert_eq!(kept, old.len().min(new.len()), "{} {:?} → {:?}", member, old, new);
                    }
                }
                // Membership unchanged ⇒ targets unchanged.
                if before[gi].keys().eq(after.keys()) && generations[gi] == g.generation() {
                    prop_assert_eq!(&before[gi], &after);
                }
            }
        }
    }

    #[test]
    fn group_snapshot_then_replay_equals_replay(
        steps in prop::collection::vec((0u64..6_000, group_op()), 1..60),
        split in 0usize..60,
    ) {
        let split = split.min(steps.len());
        let times: Vec<u64> = steps
            .iter()
            .scan(0, |now, (delta, _)| {
                *now += delta;
                Some(*now)
            })
            .collect();
        let mut full = GroupDriver::new(GroupCoordinator::new(4));
        let full_outcomes: Vec<_> = steps
            .iter()
            .zip(&times)
            .map(|((_, op), now)| full.apply(*now, op))
            .collect();
        let mut head = GroupDriver::new(GroupCoordinator::new(4));
        for ((_, op), now) in steps[..split].iter().zip(&times) {
            head.apply(*now, op);
        }
        let json = serde_json::to_string(&head.coordinator).unwrap();
        let mut restored = GroupDriver {
            coordinator: serde_json::from_str(&json).unwrap(),
            index: head.index,
            known: head.known,
        };
        for (i, ((_, op), now)) in steps.iter().zip(&times).enumerate().skip(split) {
            let outcome = restored.apply(*now, op);
            prop_assert_eq!(&outcome, &full_outcomes[i]);
        }
        prop_assert_eq!(restored.coordinator, full.coordinator);
    }
}

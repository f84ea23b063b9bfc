//! The consumer-group rules: membership, generations, cooperative
//! assignment (revoke, then assign), session expiry, commits, seek, lag,
//! independent groups.

use std::collections::BTreeMap;

use sluice_stream::{
    AssignmentStrategy, GroupCommand, GroupCoordinator, GroupReply, MemberId, MemberView,
    PartitionBounds, SeekTarget, StreamError, TimedCommand,
};

const SESSION_MS: u64 = 10_000;

/// A coordinator driven with increasing log indexes.
struct Harness {
    coordinator: GroupCoordinator,
    index: u64,
}

impl Harness {
    fn new(partitions: u32) -> Self {
        Self {
            coordinator: GroupCoordinator::new(partitions),
            index: 0,
        }
    }

    fn apply(&mut self, now_ms: u64, command: GroupCommand) -> Result<GroupReply, StreamError> {
        self.index += 1;
        self.coordinator
            .apply(self.index, TimedCommand::new(now_ms, command))
            .result
    }

    fn join(&mut self, now_ms: u64, group: &str, strategy: AssignmentStrategy) -> MemberId {
        match self.apply(
            now_ms,
            GroupCommand::Join {
                group: group.into(),
                member_id: None,
                client_id: "c".into(),
                session_timeout_ms: SESSION_MS,
                strategy,
            },
        ) {
            Ok(GroupReply::Joined { member_id, .. }) => member_id,
            other => panic!("join failed: {other:?}"),
        }
    }

    fn generation(&self, group: &str) -> u64 {
        self.coordinator.group(group).unwrap().generation()
    }

    fn owned(&self, group: &str, member: &MemberId) -> Vec<u32> {
        self.coordinator.group(group).unwrap().assignment_of(member)
    }

    fn heartbeat(
        &mut self,
        now_ms: u64,
        group: &str,
        member: &MemberId,
    ) -> Result<GroupReply, StreamError> {
        let generation = self.generation(group);
        self.apply(
            now_ms,
            GroupCommand::Heartbeat {
                group: group.into(),
                member_id: member.clone(),
                generation,
            },
        )
    }

    /// Every member heartbeats in the current generation: every pending
    /// revocation is acknowledged and its partition handed over.
    fn settle(&mut self, now_ms: u64, group: &str) {
        let members: Vec<MemberId> = self
            .coordinator
            .group(group)
            .unwrap()
            .members()
            .keys()
            .cloned()
            .collect();
        for m in &members {
            self.heartbeat(now_ms, group, m).unwrap();
        }
        assert!(
            !self
                .coordinator
                .group(group)
                .unwrap()
                .rebalance_in_progress()
        );
    }

    fn view(&self, group: &str, member: &MemberId) -> MemberView {
        self.coordinator.group(group).unwrap().view_of(member)
    }

    fn commit(
        &mut self,
        group: &str,
        member: &MemberId,
        generation: u64,
        offsets: &[(u32, u64)],
    ) -> Result<GroupReply, StreamError> {
        self.apply(
            0,
            GroupCommand::Commit {
                group: group.into(),
                member_id: member.clone(),
                generation,
                offsets: offsets.iter().copied().collect(),
            },
        )
    }
}

fn bounds(list: &[(u64, u64)]) -> BTreeMap<u32, PartitionBounds> {
    list.iter()
        .enumerate()
        .map(|(p, &(earliest, end))| (p as u32, PartitionBounds { earliest, end }))
        .collect()
}

#[test]
fn member_ids_are_deterministic_and_joins_bump_the_generation() {
    let mut h = Harness::new(6);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    assert_eq!(a, MemberId::from("c-0"));
    assert_eq!(h.generation("g"), 1);
    assert_eq!(h.owned("g", &a), vec![0, 1, 2, 3, 4, 5]);
    let b = h.join(0, "g", AssignmentStrategy::Range);
    assert_eq!(b, MemberId::from("c-1"));
    assert_eq!(h.generation("g"), 2);
    // Cooperative: a keeps 0..3, b gets what moved once a let go of it.
    h.settle(0, "g");
    assert_eq!(h.generation("g"), 2, "a hand-over is no new generation");
    assert_eq!(h.owned("g", &a), vec![0, 1, 2]);
    assert_eq!(h.owned("g", &b), vec![3, 4, 5]);
}

#[test]
fn three_members_split_six_partitions_and_a_leave_keeps_ownership() {
    for strategy in [AssignmentStrategy::Range, AssignmentStrategy::RoundRobin] {
        let mut h = Harness::new(6);
        let members: Vec<MemberId> = (0..3).map(|_| h.join(0, "g", strategy)).collect();
        h.settle(0, "g");
        let before: Vec<Vec<u32>> = members.iter().map(|m| h.owned("g", m)).collect();
        assert!(
            before.iter().all(|p| p.len() == 2),
            "{strategy}: {before:?}"
        );
        let mut all: Vec<u32> = before.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5], "{strategy}: {before:?}");
        let generation = h.generation("g");
        h.apply(
            0,
            GroupCommand::Leave {
                group: "g".into(),
                member_id: members[1].clone(),
            },
        )
        .unwrap();
        assert_eq!(h.generation("g"), generation + 1);
        for i in [0, 2] {
            let now = h.owned("g", &members[i]);
            assert_eq!(now.len(), 3, "{strategy}");
            assert!(
                before[i].iter().all(|p| now.contains(p)),
                "{strategy}: kept {now:?}"
            );
        }
        assert!(h.owned("g", &members[1]).is_empty());
    }
}

#[test]
fn a_fresh_group_gets_the_strategy_layout() {
    // Partitions appear after the members joined: the rebalance starts from nothing.
    let mut h0 = Harness::new(0);
    let members: Vec<MemberId> = (0..3)
        .map(|_| h0.join(0, "g", AssignmentStrategy::RoundRobin))
        .collect();
    h0.apply(0, GroupCommand::SetPartitionCount { partitions: 6 })
        .unwrap();
    let got: Vec<Vec<u32>> = members.iter().map(|m| h0.owned("g", m)).collect();
    assert_eq!(got, vec![vec![0, 3], vec![1, 4], vec![2, 5]]);
    // Shrinking is refused.
    assert_eq!(
        h0.apply(0, GroupCommand::SetPartitionCount { partitions: 3 }),
        Err(StreamError::PartitionCountShrink {
            current: 6,
            requested: 3
        })
    );
}

#[test]
fn a_member_that_stops_heartbeating_is_expelled_after_its_session_timeout() {
    let mut h = Harness::new(6);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    let b = h.join(0, "g", AssignmentStrategy::Range);
    let c = h.join(0, "g", AssignmentStrategy::Range);
    // a and b heartbeat (a hands its revoked partitions over); c goes silent.
    h.heartbeat(6_000, "g", &a).unwrap();
    h.heartbeat(6_000, "g", &b).unwrap();
    assert_eq!(h.owned("g", &c), vec![2, 5]);
    // Exactly at the timeout c is still in.
    h.apply(SESSION_MS, GroupCommand::Tick).unwrap();
    assert!(h.coordinator.group("g").unwrap().members().contains_key(&c));
    let generation = h.generation("g");
    h.index += 1;
    let applied = h.coordinator.apply(
        h.index,
        TimedCommand::new(SESSION_MS + 1, GroupCommand::Tick),
    );
    assert_eq!(applied.expired, vec![("g".to_owned(), c.clone())]);
    assert_eq!(h.generation("g"), generation + 1);
    assert_eq!(h.owned("g", &a), vec![0, 1, 2]);
    assert_eq!(h.owned("g", &b), vec![3, 4, 5]);
    // The expelled member is unknown now.
    assert_eq!(
        h.heartbeat(SESSION_MS + 2, "g", &c),
        Err(StreamError::UnknownMember(c))
    );
}

#[test]
fn a_stale_generation_is_fenced_until_the_member_rejoins() {
    let mut h = Harness::new(4);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    let old = h.generation("g");
    h.commit("g", &a, old, &[(0, 10)]).unwrap();
    let _b = h.join(0, "g", AssignmentStrategy::Range);
    let current = h.generation("g");
    assert_eq!(
        h.commit("g", &a, old, &[(0, 11)]),
        Err(StreamError::StaleGeneration { current, got: old })
    );
    assert_eq!(
        h.apply(
            0,
            GroupCommand::Heartbeat {
                group: "g".into(),
                member_id: a.clone(),
                generation: old
            }
        ),
        Err(StreamError::StaleGeneration { current, got: old })
    );
    // Rejoin with the member id: same membership, the current generation.
    let rejoined = h
        .apply(
            0,
            GroupCommand::Join {
                group: "g".into(),
                member_id: Some(a.clone()),
                client_id: "c".into(),
                session_timeout_ms: SESSION_MS,
                strategy: AssignmentStrategy::Range,
            },
        )
        .unwrap();
    assert_eq!(
        rejoined,
        GroupReply::Joined {
            member_id: a.clone(),
            generation: current,
            view: MemberView {
                assignment: vec![0, 1],
                revoked: vec![2, 3],
                rebalance_in_progress: true,
            }
        }
    );
    h.commit("g", &a, current, &[(0, 11)]).unwrap();
    assert_eq!(h.coordinator.group("g").unwrap().committed(0), Some(11));
    // Still a stale commit of a revoked partition is refused.
    assert_eq!(
        h.commit("g", &a, old, &[(2, 11)]),
        Err(StreamError::StaleGeneration { current, got: old })
    );
}

#[test]
fn only_the_owner_commits_and_commits_are_all_or_nothing() {
    let mut h = Harness::new(4);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    let b = h.join(0, "g", AssignmentStrategy::Range);
    h.settle(0, "g");
    let generation = h.generation("g");
    assert_eq!(
        h.commit("g", &a, generation, &[(0, 5), (2, 5)]),
        Err(StreamError::NotPartitionOwner {
            member_id: a.clone(),
            partition: 2
        })
    );
    assert_eq!(h.coordinator.group("g").unwrap().committed(0), None);
    assert_eq!(
        h.commit("g", &b, generation, &[(9, 5)]),
        Err(StreamError::UnknownPartition {
            partition: 9,
            partitions: 4
        })
    );
    h.commit("g", &b, generation, &[(2, 7), (3, 8)]).unwrap();
    assert_eq!(
        h.coordinator.group("g").unwrap().committed_offsets(),
        &BTreeMap::from([(2, 7), (3, 8)])
    );
    assert_eq!(
        h.commit("g", &MemberId::from("nobody"), generation, &[(0, 1)]),
        Err(StreamError::UnknownMember(MemberId::from("nobody")))
    );
}

#[test]
fn seek_needs_an_empty_group_unless_forced() {
    let mut h = Harness::new(3);
    let b = bounds(&[(5, 50), (0, 10), (7, 7)]);
    // A seek creates the group.
    let reply = h
        .apply(
            0,
            GroupCommand::Seek {
                group: "g".into(),
                target: SeekTarget::Earliest,
                bounds: b.clone(),
                force: false,
            },
        )
        .unwrap();
    assert_eq!(
        reply,
        GroupReply::Seeked {
            generation: 0,
            offsets: BTreeMap::from([(0, 5), (1, 0), (2, 7)])
        }
    );
    h.apply(
        0,
        GroupCommand::Seek {
            group: "g".into(),
            target: SeekTarget::Offsets {
                offsets: BTreeMap::from([(0, 2), (1, 4)]),
            },
            bounds: b.clone(),
            force: false,
        },
    )
    .unwrap();
    let g = h.coordinator.group("g").unwrap();
    // Clamped to the earliest offset; partition 2 untouched.
    assert_eq!(
        g.committed_offsets(),
        &BTreeMap::from([(0, 5), (1, 4), (2, 7)])
    );

    let a = h.join(0, "g", AssignmentStrategy::Range);
    let latest = GroupCommand::Seek {
        group: "g".into(),
        target: SeekTarget::Latest,
        bounds: b.clone(),
        force: false,
    };
    assert_eq!(
        h.apply(0, latest),
        Err(StreamError::GroupNotEmpty {
            group: "g".into(),
            members: 1
        })
    );
    let generation = h.generation("g");
    h.apply(
        0,
        GroupCommand::Seek {
            group: "g".into(),
            target: SeekTarget::Latest,
            bounds: b,
            force: true,
        },
    )
    .unwrap();
    assert_eq!(h.generation("g"), generation + 1);
    assert_eq!(
        h.commit("g", &a, generation, &[(0, 6)]),
        Err(StreamError::StaleGeneration {
            current: generation + 1,
            got: generation
        })
    );
    assert_eq!(
        h.coordinator.group("g").unwrap().committed_offsets(),
        &BTreeMap::from([(0, 50), (1, 10), (2, 7)])
    );
    // Earliest / latest need every partition's bounds.
    h.apply(
        0,
        GroupCommand::Leave {
            group: "g".into(),
            member_id: a,
        },
    )
    .unwrap();
    assert_eq!(
        h.apply(
            0,
            GroupCommand::Seek {
                group: "g".into(),
                target: SeekTarget::Earliest,
                bounds: bounds(&[(0, 1)]),
                force: false,
            }
        ),
        Err(StreamError::MissingBounds { partition: 1 })
    );
}

#[test]
fn lag_counts_from_the_committed_offset() {
    let mut h = Harness::new(3);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    let generation = h.generation("g");
    h.commit("g", &a, generation, &[(0, 40), (1, 2)]).unwrap();
    let lag = h
        .coordinator
        .lag("g", &bounds(&[(0, 50), (5, 10), (0, 7)]))
        .unwrap();
    // Partition 1's commit fell below retention; partition 2 has none.
    assert_eq!(lag, BTreeMap::from([(0, 10), (1, 5), (2, 7)]));
    assert_eq!(
        h.coordinator.lag("nope", &BTreeMap::new()),
        Err(StreamError::UnknownGroup("nope".into()))
    );
}

#[test]
fn groups_on_one_stream_are_independent() {
    let mut h = Harness::new(4);
    let a = h.join(0, "g1", AssignmentStrategy::Range);
    let _b = h.join(0, "g2", AssignmentStrategy::RoundRobin);
    // Member ids are per group: g2's second member is unknown to g1.
    let b = h.join(0, "g2", AssignmentStrategy::RoundRobin);
    assert_eq!(h.generation("g1"), 1);
    assert_eq!(h.generation("g2"), 2);
    assert_eq!(h.owned("g1", &a), vec![0, 1, 2, 3]);
    h.commit("g1", &a, 1, &[(0, 9)]).unwrap();
    assert_eq!(h.coordinator.group("g2").unwrap().committed(0), None);
    // A member of g2 is no member of g1.
    assert_eq!(
        h.commit("g1", &b, 1, &[(0, 1)]),
        Err(StreamError::UnknownMember(b.clone()))
    );
    // Strategies are per group; a mismatch within a group is refused.
    assert_eq!(
        h.apply(
            0,
            GroupCommand::Join {
                group: "g1".into(),
                member_id: None,
                client_id: "c".into(),
                session_timeout_ms: SESSION_MS,
                strategy: AssignmentStrategy::RoundRobin,
            }
        ),
        Err(StreamError::InconsistentStrategy {
            group_strategy: "range".into(),
            requested: "round-robin".into()
        })
    );
    assert_eq!(
        h.apply(0, GroupCommand::DeleteGroup { group: "g1".into() }),
        Err(StreamError::GroupNotEmpty {
            group: "g1".into(),
            members: 1
        })
    );
}

#[test]
fn the_snapshot_round_trips() {
    let mut h = Harness::new(4);
    let a = h.join(0, "g", AssignmentStrategy::RoundRobin);
    h.commit("g", &a, 1, &[(1, 3)]).unwrap();
    let json = serde_json::to_string(&h.coordinator).unwrap();
    let back: GroupCoordinator = serde_json::from_str(&json).unwrap();
    assert_eq!(back, h.coordinator);
}

#[test]
fn expiry_and_a_join_in_one_entry_make_one_rebalance() {
    let mut h = Harness::new(2);
    let a = h.join(0, "g", AssignmentStrategy::RoundRobin);
    let b = h.join(5_000, "g", AssignmentStrategy::RoundRobin);
    // 1 is revoked from a, which never acknowledges: b waits for it.
    assert!(h.owned("g", &b).is_empty());
    assert_eq!(h.view("g", &a).revoked, vec![1]);
    let generation = h.generation("g");
    h.heartbeat(9_000, "g", &b).unwrap();
    assert!(h.owned("g", &b).is_empty());
    // a's session ran out when c joins: one new generation; with a gone
    // nobody holds 1, so b gets it at once, and c gets 0.
    let c = h.join(SESSION_MS + 1, "g", AssignmentStrategy::RoundRobin);
    assert_eq!(h.generation("g"), generation + 1);
    assert_eq!(h.owned("g", &b), vec![1]);
    assert_eq!(h.owned("g", &c), vec![0]);
    assert!(h.owned("g", &a).is_empty());
    assert!(!h.coordinator.group("g").unwrap().rebalance_in_progress());
    // A heartbeat in the entry that expels someone sees the new generation.
    let current = h.generation("g");
    h.heartbeat(15_000, "g", &b).unwrap();
    assert_eq!(
        h.apply(
            20_005,
            GroupCommand::Heartbeat {
                group: "g".into(),
                member_id: b.clone(),
                generation: current,
            }
        ),
        Err(StreamError::StaleGeneration {
            current: current + 1,
            got: current
        })
    );
    assert_eq!(h.owned("g", &b), vec![0, 1]);
}

/// Every member's view: no partition in two members' `assignment ∪ revoked`.
fn assert_disjoint(h: &Harness, group: &str) {
    let g = h.coordinator.group(group).unwrap();
    let mut seen = BTreeMap::new();
    for m in g.members().keys() {
        let view = g.view_of(m);
        for p in view.assignment.iter().chain(&view.revoked) {
            if let Some(other) = seen.insert(*p, m.clone()) {
                panic!("partition {p} held by {other} and {m}");
            }
        }
    }
}

#[test]
fn a_moved_partition_is_revoked_first_and_assigned_once_its_owner_acknowledges() {
    let mut h = Harness::new(4);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    let b = h.join(0, "g", AssignmentStrategy::Range);
    let generation = h.generation("g");
    let in_flight = MemberView {
        assignment: vec![0, 1],
        revoked: vec![2, 3],
        rebalance_in_progress: true,
    };
    assert_eq!(h.view("g", &a), in_flight);
    assert_eq!(
        h.view("g", &b),
        MemberView {
            assignment: vec![],
            revoked: vec![],
            rebalance_in_progress: true
        }
    );
    assert_disjoint(&h, "g");
    // b's heartbeat changes nothing: a has not let go.
    assert_eq!(
        h.heartbeat(1, "g", &b),
        Ok(GroupReply::HeartbeatOk {
            generation,
            view: h.view("g", &b)
        })
    );
    assert!(h.owned("g", &b).is_empty());
    // The holder of a revoked partition may still commit where it got to;
    // the new owner may not, yet.
    h.commit("g", &a, generation, &[(2, 7)]).unwrap();
    assert_eq!(
        h.commit("g", &b, generation, &[(2, 8)]),
        Err(StreamError::NotPartitionOwner {
            member_id: b.clone(),
            partition: 2
        })
    );
    // A heartbeat in an older generation is fenced and acknowledges nothing.
    assert_eq!(
        h.apply(
            2,
            GroupCommand::Heartbeat {
                group: "g".into(),
                member_id: a.clone(),
                generation: generation - 1,
            }
        ),
        Err(StreamError::StaleGeneration {
            current: generation,
            got: generation - 1
        })
    );
    assert_eq!(h.view("g", &a), in_flight);
    // a's heartbeat in the current generation hands 2 and 3 over.
    assert_eq!(
        h.heartbeat(3, "g", &a),
        Ok(GroupReply::HeartbeatOk {
            generation,
            view: MemberView {
                assignment: vec![0, 1],
                revoked: vec![],
                rebalance_in_progress: false
            }
        })
    );
    assert_eq!(h.generation("g"), generation);
    assert_eq!(h.owned("g", &b), vec![2, 3]);
    assert_disjoint(&h, "g");
    assert_eq!(
        h.commit("g", &a, generation, &[(2, 9)]),
        Err(StreamError::NotPartitionOwner {
            member_id: a.clone(),
            partition: 2
        })
    );
    h.commit("g", &b, generation, &[(2, 9)]).unwrap();
}

#[test]
fn a_losing_owner_that_times_out_instead_of_acknowledging_releases_its_partitions() {
    let mut h = Harness::new(4);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    let b = h.join(0, "g", AssignmentStrategy::Range);
    let generation = h.generation("g");
    // Only b heartbeats: a never acknowledges its revocation.
    h.heartbeat(SESSION_MS / 2, "g", &b).unwrap();
    h.heartbeat(SESSION_MS, "g", &b).unwrap();
    assert!(h.owned("g", &b).is_empty());
    assert!(h.coordinator.group("g").unwrap().rebalance_in_progress());
    h.index += 1;
    let applied = h.coordinator.apply(
        h.index,
        TimedCommand::new(SESSION_MS + 1, GroupCommand::Tick),
    );
    assert_eq!(applied.expired, vec![("g".to_owned(), a.clone())]);
    assert_eq!(h.generation("g"), generation + 1);
    assert_eq!(h.owned("g", &b), vec![0, 1, 2, 3]);
    assert!(!h.coordinator.group("g").unwrap().rebalance_in_progress());
}

#[test]
fn a_member_joining_mid_revocation_retargets_without_bouncing_partitions() {
    let mut h = Harness::new(6);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    let b = h.join(0, "g", AssignmentStrategy::Range);
    assert_eq!(h.view("g", &a).revoked, vec![3, 4, 5]);
    let c = h.join(0, "g", AssignmentStrategy::Range);
    assert_disjoint(&h, "g");
    // a never lost 0 and 1; everything else waits for a.
    let view = h.view("g", &a);
    assert_eq!(view.assignment, vec![0, 1]);
    assert_eq!(view.revoked, vec![2, 3, 4, 5]);
    assert!(h.owned("g", &b).is_empty() && h.owned("g", &c).is_empty());
    let pending = h.coordinator.group("g").unwrap().pending().clone();
    // b still gets two of the three it was promised.
    let to_b: Vec<u32> = pending
        .iter()
        .filter(|(_, r)| r.to == b)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(to_b, vec![3, 4]);
    h.heartbeat(1, "g", &b).unwrap();
    h.heartbeat(1, "g", &c).unwrap();
    assert_disjoint(&h, "g");
    h.heartbeat(1, "g", &a).unwrap();
    assert_disjoint(&h, "g");
    assert_eq!(h.owned("g", &a), vec![0, 1]);
    assert_eq!(h.owned("g", &b), vec![3, 4]);
    assert_eq!(h.owned("g", &c), vec![2, 5]);
}

#[test]
fn a_partition_retargeted_to_its_holder_goes_back_without_a_hand_over() {
    let mut h = Harness::new(4);
    let a = h.join(0, "g", AssignmentStrategy::Range);
    let b = h.join(0, "g", AssignmentStrategy::Range);
    assert_eq!(h.view("g", &a).revoked, vec![2, 3]);
    h.apply(
        1,
        GroupCommand::Leave {
            group: "g".into(),
            member_id: b,
        },
    )
    .unwrap();
    // Nobody but a ever held 2 and 3: they are a's again at once.
    assert_eq!(
        h.view("g", &a),
        MemberView {
            assignment: vec![0, 1, 2, 3],
            revoked: vec![],
            rebalance_in_progress: false
        }
    );
}

//! Partition assignment: `range` and `round-robin` layouts, applied
//! cooperatively.
//!
//! The target. On every membership change the coordinator computes a
//! balanced target — every member gets `partitions / members` partitions
//! and the remainder go one each to the members that already own the most —
//! and then moves only what must move:
//!
//! 1. each member keeps the partitions it owns, up to its quota, preferring
//!    the ones the strategy's fresh layout would give it;
//! 2. the partitions left over (unowned, or taken from members above their
//!    quota) go to members below their quota — to the strategy's choice
//!    when that member has room, else to the first member with room.
//!
//! A member whose quota is at least what it owns keeps every partition it
//! had; a fresh group gets exactly the strategy's layout. "Owns" here is
//! where a partition is headed (a partition pending revocation counts for
//! its new owner), so a second change mid-rebalance does not bounce it.
//! This module only computes the target: getting there — revoke from the
//! live losing owner first, hand over once it acknowledged — is the group's
//! (see the protocol in [`super`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::MemberId;
use crate::PartitionId;

/// How a group lays partitions out over its members (members in join order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssignmentStrategy {
    /// Contiguous ranges: with 6 partitions and 3 members, {0,1} {2,3} {4,5}.
    #[default]
    Range,
    /// Dealt in turn: with 6 partitions and 3 members, {0,3} {1,4} {2,5}.
    RoundRobin,
}

impl std::fmt::Display for AssignmentStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Range => "range",
            Self::RoundRobin => "round-robin",
        })
    }
}

impl AssignmentStrategy {
    /// The fresh layout: partition → index of its member in `member_count`.
    pub(crate) fn layout(self, partitions: u32, member_count: usize) -> Vec<usize> {
        let n = partitions as usize;
        if member_count == 0 {
            return Vec::new();
        }
        match self {
            Self::RoundRobin => (0..n).map(|p| p % member_count).collect(),
            Self::Range => {
                let base = n / member_count;
                let extra = n % member_count;
                let mut out = Vec::with_capacity(n);
                for m in 0..member_count {
                    let count = base + usize::from(m < extra);
                    out.extend(std::iter::repeat_n(m, count));
                }
                out
            }
        }
    }
}

/// The cooperative rebalance: the new owner of every partition, given the
/// members (in join order) and the current ownership.
pub(crate) fn rebalance(
    strategy: AssignmentStrategy,
    partitions: u32,
    members: &[MemberId],
    current: &BTreeMap<PartitionId, MemberId>,
) -> BTreeMap<PartitionId, MemberId> {
    let k = members.len();
    if k == 0 {
        return BTreeMap::new();
    }
    let layout = strategy.layout(partitions, k);
    let index: BTreeMap<&MemberId, usize> =
        members.iter().enumerate().map(|(i, m)| (m, i)).collect();

    // What each member owns now (partitions that still exist, live members).
    let mut owned: Vec<Vec<PartitionId>> = vec![Vec::new(); k];
    for (&p, m) in current {
        if p < partitions
            && let Some(&i) = index.get(m)
        {
            owned[i].push(p);
        }
    }

    // Quotas: base for all, the remainder to those owning the most now.
    let n = partitions as usize;
    let mut quota = vec![n / k; k];
    let mut by_owned: Vec<usize> = (0..k).collect();
    by_owned.sort_by_key(|&i| (std::cmp::Reverse(owned[i].len()), i));
    for &i in by_owned.iter().take(n % k) {
        quota[i] += 1;
    }

    // 1. Keep, up to the quota, the strategy's choices first.
    let mut next: BTreeMap<PartitionId, MemberId> = BTreeMap::new();
    let mut count = vec![0usize; k];
    for i in 0..k {
        let mut mine = owned[i].clone();
        mine.sort_by_key(|&p| (layout[p as usize] != i, p));
        for p in mine.into_iter().take(quota[i]) {
            next.insert(p, members[i].clone());
            count[i] += 1;
        }
    }

    // 2. Hand out the rest.
    let free: BTreeSet<PartitionId> = (0..partitions).filter(|p| !next.contains_key(p)).collect();
    for p in free {
        let preferred = layout[p as usize];
        let target = if count[preferred] < quota[preferred] {
            Some(preferred)
        } else {
            (0..k).find(|&i| count[i] < quota[i])
        };
        if let Some(i) = target {
            next.insert(p, members[i].clone());
            count[i] += 1;
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<MemberId> {
        (0..n).map(|i| MemberId(format!("m-{i}"))).collect()
    }

    fn counts(a: &BTreeMap<PartitionId, MemberId>, members: &[MemberId]) -> Vec<usize> {
        members
            .iter()
            .map(|m| a.values().filter(|o| *o == m).count())
            .collect()
    }

    #[test]
    fn layouts_from_scratch() {
        assert_eq!(
            AssignmentStrategy::Range.layout(7, 3),
            vec![0, 0, 0, 1, 1, 2, 2]
        );
        assert_eq!(
            AssignmentStrategy::RoundRobin.layout(7, 3),
            vec![0, 1, 2, 0, 1, 2, 0]
        );
        assert!(AssignmentStrategy::Range.layout(4, 0).is_empty());
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle() {
        let members = ids(3);
        let a = rebalance(AssignmentStrategy::Range, 2, &members, &BTreeMap::new());
        assert_eq!(counts(&a, &members), vec![1, 1, 0]);
    }

    #[test]
    fn a_new_member_takes_only_from_the_fullest() {
        let members = ids(3);
        let current: BTreeMap<PartitionId, MemberId> = (0..6)
            .map(|p| (p, members[(p as usize) / 3].clone()))
            .collect();
        let a = rebalance(AssignmentStrategy::Range, 6, &members, &current);
        assert_eq!(counts(&a, &members), vec![2, 2, 2]);
        let moved = (0..6).filter(|p| a[p] != current[p]).count();
        assert_eq!(moved, 2);
    }
}

//! Committed offsets: commit (current holder — the owner, or the member a
//! pending revocation takes it from — current generation, all or nothing), seek of a whole group, and lag.
//!
//! Seek rule: a plain seek needs the group to have no members (Kafka's
//! `--reset-offsets` rule: nobody is consuming, so nobody overwrites the new
//! positions). A `force` seek — the broker proposes it only for an
//! admin-scoped caller — works on a live group and bumps its generation, so
//! commits in flight from before the seek are fenced and the members rejoin
//! and resume from the new positions. A seek to a group that does not exist
//! creates it (positions a group before its consumers start).
//!
//! Offsets are resolved by the broker, never here: the coordinator does not
//! see other partitions' logs. The seek command carries every partition's
//! [`PartitionBounds`] and, for a timestamp, the offsets the storage time
//! index gave; explicit offsets are clamped into the bounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{GroupCoordinator, GroupReply, MemberId};
use crate::error::StreamError;
use crate::{GroupId, Offset, PartitionId};

/// A partition's readable range when the broker looked: `earliest` is the
/// first retained offset, `end` the next to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionBounds {
    pub earliest: Offset,
    pub end: Offset,
}

/// Where a seek moves a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "to")]
pub enum SeekTarget {
    /// Every partition's earliest offset.
    Earliest,
    /// Every partition's end offset: only new records.
    Latest,
    /// These partitions to these offsets; the others keep theirs.
    Offsets {
        #[serde(with = "crate::partition_map")]
        offsets: BTreeMap<PartitionId, Offset>,
    },
    /// The first offsets at or after `timestamp_ms`, as the broker resolved
    /// them with the storage time index (the end offset when none is).
    Timestamp {
        timestamp_ms: i64,
        #[serde(with = "crate::partition_map")]
        offsets: BTreeMap<PartitionId, Offset>,
    },
}

impl GroupCoordinator {
    pub(super) fn commit(
        &mut self,
        group: &str,
        member_id: &MemberId,
        generation: u64,
        offsets: BTreeMap<PartitionId, Offset>,
    ) -> Result<GroupReply, StreamError> {
        let partitions = self.partitions;
        let g = self.group_mut(group)?;
        if !g.members.contains_key(member_id) {
            return Err(StreamError::UnknownMember(member_id.clone()));
        }
        if generation != g.generation {
            return Err(StreamError::StaleGeneration {
                current: g.generation,
                got: generation,
            });
        }
        for &partition in offsets.keys() {
            if partition >= partitions {
                return Err(StreamError::UnknownPartition {
                    partition,
                    partitions,
                });
            }
            if !g.holds(member_id, partition) {
                return Err(StreamError::NotPartitionOwner {
                    member_id: member_id.clone(),
                    partition,
                });
            }
        }
        g.committed.extend(offsets);
        Ok(GroupReply::Committed {
            generation: g.generation,
        })
    }

    pub(super) fn seek(
        &mut self,
        group: GroupId,
        target: SeekTarget,
        bounds: &BTreeMap<PartitionId, PartitionBounds>,
        force: bool,
    ) -> Result<GroupReply, StreamError> {
        let partitions = self.partitions;
        if let Some(g) = self.groups.get(&group)
            && !g.members.is_empty()
            && !force
        {
            return Err(StreamError::GroupNotEmpty {
                members: g.members.len(),
                group,
            });
        }
        let wanted: BTreeMap<PartitionId, Offset> = match &target {
            SeekTarget::Earliest | SeekTarget::Latest => (0..partitions)
                .map(|p| {
                    let b = bounds
                        .get(&p)
                        .ok_or(StreamError::MissingBounds { partition: p })?;
                    let offset = if target == SeekTarget::Earliest {
                        b.earliest
                    } else {
                        b.end
                    };
                    Ok((p, offset))
                })
                .collect::<Result<_, StreamError>>()?,
            SeekTarget::Offsets { offsets } | SeekTarget::Timestamp { offsets, .. } => {
                let mut out = BTreeMap::new();
                for (&p, &offset) in offsets {
                    if p >= partitions {
                        return Err(StreamError::UnknownPartition {
                            partition: p,
                            partitions,
                        });
                    }
                    let offset = match bounds.get(&p) {
                        Some(b) => offset.clamp(b.earliest, b.end.max(b.earliest)),
                        None => offset,
                    };
                    out.insert(p, offset);
                }
                out
            }
        };
        let g = self.groups.entry(group).or_default();
        g.committed.extend(wanted);
        if !g.members.is_empty() {
            // Forced: a new generation fences what the members did before
            // the seek (the assignment stays: membership is unchanged).
            g.changed = true;
            g.settle(partitions);
        }
        Ok(GroupReply::Seeked {
            generation: g.generation,
            offsets: g.committed.clone(),
        })
    }

    /// Per partition of `bounds`, how many records `group` has yet to
    /// consume: `end - committed`, counting from the earliest offset when
    /// nothing is committed or the committed offset fell below retention.
    pub fn lag(
        &self,
        group: &str,
        bounds: &BTreeMap<PartitionId, PartitionBounds>,
    ) -> Result<BTreeMap<PartitionId, u64>, StreamError> {
        let g = self
            .groups
            .get(group)
            .ok_or_else(|| StreamError::UnknownGroup(group.to_owned()))?;
        Ok(bounds
            .iter()
            .map(|(&p, b)| {
                let position = g
                    .committed(p)
                    .unwrap_or(b.earliest)
                    .clamp(b.earliest, b.end.max(b.earliest));
                (p, b.end.saturating_sub(position))
            })
            .collect())
    }
}

//! Membership: join (the coordinator assigns member ids), rejoin after a
//! fence, heartbeat, leave, and expiry of members whose last heartbeat is
//! older than their session timeout — judged against the `now_ms` of the
//! command being applied, so every replica expels the same members at the
//! same log index.

use super::{GroupCoordinator, GroupReply, Member, MemberId};
use crate::GroupId;
use crate::error::StreamError;
use crate::group::AssignmentStrategy;

impl GroupCoordinator {
    pub(super) fn join(
        &mut self,
        group: GroupId,
        member_id: Option<MemberId>,
        client_id: String,
        session_timeout_ms: u64,
        strategy: AssignmentStrategy,
    ) -> Result<GroupReply, StreamError> {
        if session_timeout_ms == 0 {
            return Err(StreamError::InvalidSessionTimeout);
        }
        let now = self.clock_ms;
        let partitions = self.partitions;
        if let Some(member_id) = member_id {
            // Rejoin: same membership, learn the current generation.
            let g = self.group_mut(&group)?;
            let m = g
                .members
                .get_mut(&member_id)
                .ok_or_else(|| StreamError::UnknownMember(member_id.clone()))?;
            m.last_heartbeat_ms = now;
            m.session_timeout_ms = session_timeout_ms;
            // Not an acknowledgement of its revocations: this answer is
            // what tells the member about them.
            return Ok(GroupReply::Joined {
                generation: g.generation,
                view: g.view_of(&member_id),
                member_id,
            });
        }
        let g = self.groups.entry(group).or_default();
        if g.members.is_empty() {
            g.strategy = strategy;
        } else if g.strategy != strategy {
            return Err(StreamError::InconsistentStrategy {
                group_strategy: g.strategy.to_string(),
                requested: strategy.to_string(),
            });
        }
        let join_seq = g.next_join_seq;
        g.next_join_seq += 1;
        let prefix = if client_id.is_empty() {
            "member"
        } else {
            client_id.as_str()
        };
        let member_id = MemberId(format!("{prefix}-{join_seq}"));
        g.members.insert(
            member_id.clone(),
            Member {
                client_id,
                session_timeout_ms,
                last_heartbeat_ms: now,
                join_seq,
            },
        );
        g.changed = true;
        g.settle(partitions);
        Ok(GroupReply::Joined {
            generation: g.generation,
            view: g.view_of(&member_id),
            member_id,
        })
    }

    pub(super) fn heartbeat(
        &mut self,
        group: &str,
        member_id: &MemberId,
        generation: u64,
    ) -> Result<GroupReply, StreamError> {
        let now = self.clock_ms;
        let g = self.group_mut(group)?;
        let current = g.generation;
        let m = g
            .members
            .get_mut(member_id)
            .ok_or_else(|| StreamError::UnknownMember(member_id.clone()))?;
        if generation != current {
            return Err(StreamError::StaleGeneration {
                current,
                got: generation,
            });
        }
        m.last_heartbeat_ms = now;
        // The member learned this generation from a rejoin whose answer
        // listed its revocations: it has let go of them.
        g.release(member_id);
        Ok(GroupReply::HeartbeatOk {
            generation: current,
            view: g.view_of(member_id),
        })
    }

    pub(super) fn leave(
        &mut self,
        group: &str,
        member_id: &MemberId,
    ) -> Result<GroupReply, StreamError> {
        let partitions = self.partitions;
        let g = self.group_mut(group)?;
        if g.members.remove(member_id).is_none() {
            return Err(StreamError::UnknownMember(member_id.clone()));
        }
        g.changed = true;
        g.settle(partitions);
        Ok(GroupReply::Left {
            generation: g.generation,
        })
    }

    /// Expels every member whose session ran out. The groups that lost
    /// members rebalance once, with whatever else the entry changes.
    pub(super) fn expire(&mut self) -> Vec<(GroupId, MemberId)> {
        let now = self.clock_ms;
        let mut expired = Vec::new();
        for (name, g) in &mut self.groups {
            let gone: Vec<MemberId> = g
                .members
                .iter()
                .filter(|(_, m)| now.saturating_sub(m.last_heartbeat_ms) > m.session_timeout_ms)
                .map(|(id, _)| id.clone())
                .collect();
            if gone.is_empty() {
                continue;
            }
            for id in gone {
                g.members.remove(&id);
                expired.push((name.clone(), id));
            }
            g.changed = true;
        }
        expired
    }
}

//! Consumer groups (Kafka semantics), coordinated by partition 0 of their
//! stream: a group command is proposed on partition 0's log and applied by
//! its `GroupCoordinator`; what the coordinator refuses becomes a domain
//! error here (stale generation, not the owner, ...).

use std::collections::BTreeMap;

use sluice_protocol::problem::slug;
use sluice_stream::{GroupApplied, GroupCommand, GroupReply, StreamError};

use super::{ApplyError, EntryReply, PartitionGroup};
use crate::error::{BrokerError, BrokerResult};

/// A member's session timeout when it asks for none (Kafka's default).
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 30_000;
/// The longest session timeout a member may ask for.
pub const MAX_SESSION_TIMEOUT_MS: u64 = 300_000;

/// A consumer group name: Kafka's charset, at most 249 characters.
pub fn check_group_name(group: &str) -> BrokerResult<()> {
    let ok = !group.is_empty()
        && group.len() <= 249
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::validation(
            "group",
            "name",
            "a group name is 1 to 249 of A-Z a-z 0-9 . _ -",
        ))
    }
}

pub fn group_error(err: StreamError) -> BrokerError {
    let conflict = |slug| BrokerError::GroupConflict {
        slug,
        detail: err.to_string(),
    };
    match &err {
        StreamError::UnknownGroup(name) => BrokerError::NotFound {
            kind: "consumer group",
            name: name.clone(),
        },
        StreamError::UnknownMember(member) => BrokerError::NotFound {
            kind: "group member",
            name: member.to_string(),
        },
        StreamError::StaleGeneration { .. } => conflict(slug::STALE_GENERATION),
        StreamError::NotPartitionOwner { .. } => conflict(slug::NOT_PARTITION_OWNER),
        StreamError::InconsistentStrategy { .. } => conflict(slug::INCONSISTENT_STRATEGY),
        StreamError::GroupNotEmpty { .. } => conflict(slug::GROUP_NOT_EMPTY),
        StreamError::UnknownPartition { .. } => {
            BrokerError::validation("offsets", "partition", err.to_string())
        }
        StreamError::InvalidSessionTimeout => {
            BrokerError::validation("session_timeout_ms", "range", err.to_string())
        }
        _ => BrokerError::Internal(anyhow::Error::new(err)),
    }
}

/// Proposes `command` on partition 0 and answers the group's reply.
pub async fn apply(group: &PartitionGroup, command: GroupCommand) -> BrokerResult<GroupReply> {
    match group.propose_group(command).await? {
        Ok(EntryReply::Group(GroupApplied { result, .. })) => result.map_err(group_error),
        Ok(other) => Err(BrokerError::Internal(anyhow::anyhow!(
            "a group command got {other:?}"
        ))),
        Err(ApplyError::Stream(err)) => Err(group_error(err)),
        Err(other) => Err(BrokerError::Internal(anyhow::Error::new(other))),
    }
}

/// The group's committed offsets of `partitions`.
pub fn committed_of(
    partition: &PartitionGroup,
    group: &str,
    partitions: &[u32],
) -> BTreeMap<u32, u64> {
    partition
        .view()
        .coordinator(|c| {
            c.group(group).map(|g| {
                partitions
                    .iter()
                    .filter_map(|p| g.committed(*p).map(|o| (*p, o)))
                    .collect()
            })
        })
        .flatten()
        .unwrap_or_default()
}

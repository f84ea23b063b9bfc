//! Stream consumer groups (coordinated by partition 0's broker): join,
//! heartbeat, commit, seek, leave, describe, delete. Heartbeats, commits
//! and seeks set state rather than add to it, so they are retried on 503;
//! a join would add a second member and a leave of a member already gone
//! would fail, so they are not.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::call::{Call, empty};
use crate::client::Client;
use crate::path::Path;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssignmentStrategy {
    /// Contiguous ranges of partitions per member.
    #[default]
    Range,
    /// Partitions dealt in turn.
    RoundRobin,
}

/// `POST .../groups/{g}/join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Rejoin as a known member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// 1–300000 (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<AssignmentStrategy>,
}

/// A member's place in the group after a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    pub member_id: String,
    pub generation: u64,
    /// Partitions this member owns now: fetch and commit them.
    pub assignment: Vec<u32>,
    /// Partitions taken from it: commit, then heartbeat to hand them over.
    pub revoked: Vec<u32>,
    pub rebalance_in_progress: bool,
    /// Committed offsets of the assigned partitions.
    pub committed: BTreeMap<u32, u64>,
}

/// `POST .../groups/{g}/heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub generation: u64,
    pub assignment: Vec<u32>,
    pub revoked: Vec<u32>,
    pub rebalance_in_progress: bool,
    pub committed: BTreeMap<u32, u64>,
}

/// `POST .../groups/{g}/commit`: the next offset to read, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub member_id: String,
    pub generation: u64,
    pub offsets: BTreeMap<u32, u64>,
}

/// `POST .../groups/{g}/leave`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    pub member_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationResponse {
    pub generation: u64,
}

/// Where a seek moves the group's committed offsets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeekTo {
    #[default]
    Earliest,
    Latest,
    /// The given `offsets`.
    Offsets,
    /// The first record at or after `timestamp_ms`.
    Timestamp,
}

/// `POST .../groups/{g}/seek`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeekRequest {
    pub to: SeekTo,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offsets: BTreeMap<u32, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Seek even while the group has members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeekResponse {
    pub generation: u64,
    pub offsets: BTreeMap<u32, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub assignment: Vec<u32>,
    pub revoked: Vec<u32>,
}

/// A partition's committed offset and lag in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    pub partition: u32,
    #[serde(default)]
    pub committed: Option<u64>,
    pub earliest_offset: u64,
    pub high_watermark: u64,
    pub lag: u64,
}

/// `GET .../groups/{g}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    pub generation: u64,
    pub rebalance_in_progress: bool,
    pub strategy: String,
    pub members: Vec<GroupMember>,
    pub partitions: Vec<PartitionLag>,
}

fn group_path(stream: &str, group: &str) -> Path {
    Path::new("/v1/streams")
        .seg(stream)
        .lit("groups")
        .seg(group)
}

impl Client {
    /// Joins (or rejoins) `group` of `stream`. Not retried on 503.
    pub fn join_group(
        &self,
        stream: &str,
        group: &str,
        request: &JoinRequest,
    ) -> Call<JoinResponse> {
        let path = group_path(stream, group).lit("join").finish();
        Call::new(self, Method::POST, path).json(request)
    }

    pub fn heartbeat_group(
        &self,
        stream: &str,
        group: &str,
        request: &HeartbeatRequest,
    ) -> Call<HeartbeatResponse> {
        let path = group_path(stream, group).lit("heartbeat").finish();
        Call::new(self, Method::POST, path)
            .json(request)
            .retry_unavailable(true)
    }

    /// Commits offsets of partitions the member holds.
    pub fn commit_group(
        &self,
        stream: &str,
        group: &str,
        request: &CommitRequest,
    ) -> Call<GenerationResponse> {
        let path = group_path(stream, group).lit("commit").finish();
        Call::new(self, Method::POST, path)
            .json(request)
            .retry_unavailable(true)
    }

    pub fn seek_group(
        &self,
        stream: &str,
        group: &str,
        request: &SeekRequest,
    ) -> Call<SeekResponse> {
        let path = group_path(stream, group).lit("seek").finish();
        Call::new(self, Method::POST, path)
            .json(request)
            .retry_unavailable(true)
    }

    /// Not retried on 503.
    pub fn leave_group(
        &self,
        stream: &str,
        group: &str,
        request: &LeaveRequest,
    ) -> Call<GenerationResponse> {
        let path = group_path(stream, group).lit("leave").finish();
        Call::new(self, Method::POST, path).json(request)
    }

    pub fn describe_group(&self, stream: &str, group: &str) -> Call<GroupDescription> {
        Call::new(self, Method::GET, group_path(stream, group).finish())
    }

    /// Deletes an empty group (409 `group-not-empty` otherwise).
    pub fn delete_group(&self, stream: &str, group: &str) -> Call<()> {
        Call::decoded(
            self,
            Method::DELETE,
            group_path(stream, group).finish(),
            empty,
        )
    }
}

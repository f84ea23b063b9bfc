//! Commands and replies go through JSON (the Raft log, snapshots, forwarded
//! answers) and must come back equal: every `GroupCommand` variant, with
//! maps keyed by partition inside the internally tagged enums, which serde
//! cannot read back from JSON objects there.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_stream::{
    AssignmentStrategy, GroupCommand, GroupReply, MemberView, PartitionBounds, SeekTarget,
    TimedCommand,
};

/// Serializes `value` to JSON bytes and reads it back, also through a
/// `serde_json::Value` (a second buffering layer, as an untagged wrapper adds).
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = serde_json::to_vec(value).expect("serialize");
    let back: T = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} does not read back: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(&back, value);
    let tree = serde_json::to_value(value).expect("to value");
    let back: T = serde_json::from_value(tree.clone())
        .unwrap_or_else(|e| panic!("{tree} does not read back from a Value: {e}"));
    assert_eq!(&back, value);
}

fn bounds() -> BTreeMap<u32, PartitionBounds> {
    BTreeMap::from([
        (
            0,
            PartitionBounds {
                earliest: 0,
                end: 9,
            },
        ),
        (
            2,
            PartitionBounds {
                earliest: 3,
                end: 40,
            },
        ),
    ])
}

/// One command of every variant (and every seek target). The match makes a
/// new variant a compile error here until it is added to the list.
fn every_group_command() -> Vec<GroupCommand> {
    let commands = vec![
        GroupCommand::Join {
            group: "g".into(),
            member_id: None,
            client_id: "c".into(),
            session_timeout_ms: 10_000,
            strategy: AssignmentStrategy::default(),
        },
        GroupCommand::Join {
            group: "g".into(),
            member_id: Some("c-1".into()),
            client_id: "c".into(),
            session_timeout_ms: 10_000,
            strategy: AssignmentStrategy::RoundRobin,
        },
        GroupCommand::Heartbeat {
            group: "g".into(),
            member_id: "c-1".into(),
            generation: 3,
        },
        GroupCommand::Leave {
            group: "g".into(),
            member_id: "c-1".into(),
        },
        GroupCommand::Commit {
            group: "g".into(),
            member_id: "c-1".into(),
            generation: 3,
            offsets: BTreeMap::from([(0, 1), (2, 5), (u32::MAX, u64::MAX)]),
        },
        GroupCommand::Commit {
            group: "g".into(),
            member_id: "c-1".into(),
            generation: 3,
            offsets: BTreeMap::new(),
        },
        GroupCommand::Seek {
            group: "g".into(),
            target: SeekTarget::Earliest,
            bounds: bounds(),
            force: false,
        },
        GroupCommand::Seek {
            group: "g".into(),
            target: SeekTarget::Latest,
            bounds: BTreeMap::new(),
            force: true,
        },
        GroupCommand::Seek {
            group: "g".into(),
            target: SeekTarget::Offsets {
                offsets: BTreeMap::from([(2, 7)]),
            },
            bounds: bounds(),
            force: false,
        },
        GroupCommand::Seek {
            group: "g".into(),
            target: SeekTarget::Timestamp {
                timestamp_ms: -5,
                offsets: BTreeMap::from([(0, 4), (2, 40)]),
            },
            bounds: bounds(),
            force: true,
        },
        GroupCommand::DeleteGroup { group: "g".into() },
        GroupCommand::SetPartitionCount { partitions: 6 },
        GroupCommand::Tick,
    ];
    let covered: BTreeSet<&str> = commands
        .iter()
        .map(|command| match command {
            GroupCommand::Join { .. } => "join",
            GroupCommand::Heartbeat { .. } => "heartbeat",
            GroupCommand::Leave { .. } => "leave",
            GroupCommand::Commit { .. } => "commit",
            GroupCommand::Seek { .. } => "seek",
            GroupCommand::DeleteGroup { .. } => "delete_group",
            GroupCommand::SetPartitionCount { .. } => "set_partition_count",
            GroupCommand::Tick => "tick",
        })
        .collect();
    assert_eq!(covered.len(), 8, "every variant is in the list");
    commands
}

#[test]
fn every_group_command_round_trips_through_json() {
    for command in every_group_command() {
        round_trip(&command);
        round_trip(&TimedCommand::new(1_234, command));
    }
}

#[test]
fn every_group_reply_round_trips_through_json() {
    let replies = [
        GroupReply::Joined {
            member_id: "c-1".into(),
            generation: 1,
            view: MemberView {
                assignment: vec![0, 2],
                revoked: vec![1],
                rebalance_in_progress: true,
            },
        },
        GroupReply::HeartbeatOk {
            generation: 1,
            view: MemberView {
                assignment: vec![1],
                revoked: vec![],
                rebalance_in_progress: false,
            },
        },
        GroupReply::Left { generation: 2 },
        GroupReply::Committed { generation: 2 },
        GroupReply::Seeked {
            generation: 3,
            offsets: BTreeMap::from([(0, 4), (2, 40)]),
        },
        GroupReply::Deleted,
        GroupReply::PartitionCount { partitions: 6 },
        GroupReply::Ticked,
    ];
    for reply in &replies {
        round_trip(reply);
    }
}

#[test]
fn partition_maps_are_written_as_pairs_and_read_from_either_form() {
    let commit = GroupCommand::Commit {
        group: "g".into(),
        member_id: "c-1".into(),
        generation: 3,
        offsets: BTreeMap::from([(2, 5), (0, 1)]),
    };
    let json = serde_json::to_value(&commit).expect("serialize");
    assert_eq!(json["offsets"], serde_json::json!([[0, 1], [2, 5]]));

    // An object keyed by partition (how serde writes a plain map) reads too.
    let plain = r#"{"type":"commit","group":"g","member_id":"c-1","generation":3,
                    "offsets":{"2":5,"0":1}}"#;
    assert_eq!(
        serde_json::from_str::<GroupCommand>(plain).expect("object form"),
        commit
    );

    for bad in [
        r#"{"type":"commit","group":"g","member_id":"c-1","generation":3,"offsets":[[1,2],[1,3]]}"#,
        r#"{"type":"commit","group":"g","member_id":"c-1","generation":3,"offsets":{"x":1}}"#,
        r#"{"type":"commit","group":"g","member_id":"c-1","generation":3,"offsets":[[-1,2]]}"#,
    ] {
        assert!(
            serde_json::from_str::<GroupCommand>(bad).is_err(),
            "{bad} is refused"
        );
    }
}

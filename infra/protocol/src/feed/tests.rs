//! What a broker makes of a snapshot: everything the control plane wrote
//! comes back equal, unknown fields are ignored, and a value it cannot read
//! fails the snapshot instead of turning into a default.

use serde_json::{Value, json};

use super::*;

/// A snapshot with every kind of entry, every setting given.
fn full_snapshot() -> Value {
    json!({
        "version": 42,
        "tenants": [{
            "id": 7, "name": "acme", "status": "active",
            "quotas": {
                "max_queues": 10, "max_exchanges": 10, "max_bindings": 50, "max_streams": 2,
                "max_partitions": 8, "max_api_keys": 5, "max_message_bytes": 262144,
                "publish_messages_per_second": 100, "publish_bytes_per_second": 1048576,
                "max_storage_bytes": 1073741824
            }
        }],
        "api_keys": [{
            "id": "abcdefghijkl", "tenant_id": 7, "scopes": ["publish", "consume"],
            "secret_sha256": "00ff", "expires_at": "2030-01-02T03:04:05Z"
        }, {
            "id": "mnopqrstuvwx", "tenant_id": 7, "scopes": [],
            "secret_sha256": "ff00", "expires_at": null
        }],
        "exchanges": [{
            "tenant_id": 7, "name": "orders",
            "spec": {"type": "consistent-hash", "durable": true, "internal": false,
                     "alternate_exchange": "unrouted", "hash_header": "order-id"}
        }],
        "queues": [{
            "tenant_id": 7, "name": "jobs",
            "spec": {
                "message_ttl_ms": 60000, "max_length": null, "max_length_bytes": 1024,
                "overflow": "reject-publish", "dead_letter_exchange": "dlx",
                "dead_letter_routing_key": null, "delivery_limit": 3,
                "retry": {"initial_delay_ms": 100, "multiplier": 2.0, "max_delay_ms": 1000},
                "dedup_window_ms": 5000, "replication_factor": 1,
                "single_active_consumer": false, "message_groups": true, "lease_ms": 30000
            },
            "placement": {"group_id": "q1", "replicas": ["n1"]}
        }],
        "bindings": [{
            "tenant_id": 7, "id": "b_0123",
            "spec": {"source": "h", "destination_type": "exchange", "destination": "x2",
                     "routing_key": "", "headers": {"k": "v", "n": 1, "b": true},
                     "match": "any", "weight": null}
        }],
        "streams": [{
            "tenant_id": 7, "name": "events",
            "spec": {"partitions": 2, "replication_factor": 1, "retention_ms": null,
                     "retention_bytes": 1048576, "local_retention_ms": null,
                     "local_retention_bytes": null, "max_message_bytes": 4096},
            "partitions": [{"group_id": "s1-0", "replicas": ["n1"]},
                           {"group_id": "s1-1", "replicas": ["n2"]}]
        }],
        "nodes": [{"id": "n1", "data_url": "http://127.0.0.1:9090", "zone": "a"}]
    })
}

fn read(value: &Value) -> Result<FeedSnapshot, UnreadableSnapshot> {
    FeedSnapshot::from_json(value.to_string().as_bytes())
}

#[test]
fn a_full_snapshot_reads_back_equal() {
    let wire = full_snapshot();
    let snapshot = read(&wire).expect("readable");
    assert_eq!(snapshot.version, 42);
    assert_eq!(
        snapshot.queues[0].spec.overflow,
        sluice_queue::Overflow::RejectPublish
    );
    assert_eq!(snapshot.streams[0].spec.retention_ms, None);
    assert_eq!(serde_json::to_value(&snapshot).expect("json"), wire);
}

#[test]
fn unknown_fields_anywhere_are_ignored() {
    let mut wire = full_snapshot();
    wire["coming_soon"] = json!(true);
    wire["queues"][0]["spec"]["some_future_setting"] = json!({"x": 1});
    wire["queues"][0]["spec"]["retry"]["jitter"] = json!(0.1);
    wire["exchanges"][0]["spec"]["arguments"] = json!({});
    wire["streams"][0]["spec"]["compaction"] = json!("delete");
    wire["nodes"][0]["rack"] = json!("r1");
    let snapshot = read(&wire).expect("readable");
    assert_eq!(snapshot, read(&full_snapshot()).expect("readable"));
}

#[test]
fn a_spec_the_broker_cannot_read_fails_the_snapshot() {
    let cases = [
        (
            "/queues/0/spec/overflow",
            json!("drop-tail"),
            "queues[0].spec.overflow",
        ),
        (
            "/queues/0/spec/lease_ms",
            json!("30s"),
            "queues[0].spec.lease_ms",
        ),
        (
            "/exchanges/0/spec/type",
            json!("x-delayed"),
            "exchanges[0].spec.type",
        ),
        (
            "/bindings/0/spec/match",
            json!("most"),
            "bindings[0].spec.match",
        ),
        (
            "/streams/0/spec/partitions",
            json!(-1),
            "streams[0].spec.partitions",
        ),
        ("/queues/0/placement", json!(null), "queues[0].placement"),
    ];
    for (pointer, value, path) in cases {
        let mut wire = full_snapshot();
        *wire.pointer_mut(pointer).expect(pointer) = value;
        let err = read(&wire).expect_err(pointer);
        assert_eq!(err.version, Some(42), "{pointer}");
        assert_eq!(err.path, path, "{pointer}: {err}");
    }
}

#[test]
fn a_snapshot_without_a_readable_version_says_so() {
    let err = FeedSnapshot::from_json(br#"{"version": "x"}"#).expect_err("no version");
    assert_eq!(err.version, None);
    assert!(err.to_string().contains("version unknown"), "{err}");
    assert!(FeedSnapshot::from_json(b"").is_err());
}

#[test]
fn a_missing_setting_is_the_declared_default_not_an_error() {
    // The control plane stores every setting, defaults filled in; a spec
    // without one (written before the setting existed) reads as its default.
    let mut wire = full_snapshot();
    wire["queues"][0]["spec"] = json!({});
    let snapshot = read(&wire).expect("readable");
    assert_eq!(
        snapshot.queues[0].spec,
        sluice_queue::QueueSettings::default()
    );
}

/// Changes carrying one of each part, as the control plane writes them.
fn changes() -> Value {
    let snapshot = full_snapshot();
    json!({"changes": {
        "since": 41, "version": 44,
        "queues": snapshot["queues"], "queues_removed": [{"tenant_id": 7, "name": "old"}],
        "streams": snapshot["streams"], "streams_removed": [],
        "api_keys": snapshot["api_keys"], "api_keys_removed": ["zzzzzzzzzzzz"],
        "routing": [{"tenant_id": 7, "exchanges": snapshot["exchanges"], "bindings": snapshot["bindings"]}]
    }})
}

#[test]
fn an_update_is_a_whole_snapshot_or_changes_and_reads_back_equal() {
    let bytes = serde_json::to_vec(&json!({"snapshot": full_snapshot()})).expect("json");
    let update = FeedUpdate::from_json(&bytes).expect("a snapshot update");
    assert_eq!(update.version(), 42);
    assert!(matches!(update, FeedUpdate::Snapshot(_)));

    let bytes = serde_json::to_vec(&changes()).expect("json");
    let update = FeedUpdate::from_json(&bytes).expect("a changes update");
    assert_eq!(update.version(), 44);
    let FeedUpdate::Changes(read) = &update else {
        panic!("changes expected, got {update:?}");
    };
    assert_eq!((read.since, read.queues.len()), (41, 1));
    assert_eq!(read.queues_removed[0].name, "old");
    assert_eq!(read.routing[0].exchanges[0].name, "orders");
    let again = serde_json::to_vec(&update).expect("json");
    assert_eq!(FeedUpdate::from_json(&again).expect("round trip"), update);
}

#[test]
fn unreadable_changes_name_the_path_and_version_like_a_snapshot() {
    let mut wire = changes();
    wire["changes"]["queues"][0]["spec"]["overflow"] = json!("drop-everything");
    let bytes = serde_json::to_vec(&wire).expect("json");
    let err = FeedUpdate::from_json(&bytes).expect_err("unknown overflow");
    assert_eq!(err.version, Some(44));
    assert_eq!(err.path, "changes.queues[0].spec.overflow");
}

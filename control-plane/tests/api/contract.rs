//! The wire contract with brokers, end to end: what the control plane's real
//! handlers write (the feed built from its rows, heartbeat answers) reads back
//! through `sluice-protocol` — the broker's reading — without losing or
//! defaulting anything, and what brokers send (built from the same types) is
//! what the control plane accepts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_protocol::feed::FeedSnapshot;
use sluice_protocol::node::{Heartbeat, HeartbeatAck, RegisterNode};
use sluice_queue::{Overflow, QueueSettings};

use crate::support::{DEADLINE, TestServer};

/// Declares one of every kind of resource, each with settings away from the defaults.
async fn declare_everything(server: &TestServer, admin: &str) {
    let declares = [
        ("/v1/exchanges/dlx", json!({"type": "fanout"})),
        (
            "/v1/exchanges/orders",
            json!({"type": "consistent-hash", "durable": false, "hash_header": "order-id",
                   "alternate_exchange": "dlx"}),
        ),
        (
            "/v1/exchanges/picky",
            json!({"type": "headers", "internal": true}),
        ),
        (
            "/v1/queues/jobs",
            json!({"message_ttl_ms": 60_000, "max_length": 1000, "max_length_bytes": 1 << 20,
                   "overflow": "dead-letter", "dead_letter_exchange": "dlx",
                   "dead_letter_routing_key": "dead", "delivery_limit": 5,
                   "retry": {"initial_delay_ms": 100, "multiplier": 1.5, "max_delay_ms": 5000},
                   "dedup_window_ms": 10_000, "single_active_consumer": true,
                   "message_groups": true, "lease_ms": 5000}),
        ),
        ("/v1/queues/plain", json!({})),
        (
            "/v1/streams/events",
            json!({"partitions": 2, "retention_ms": null, "retention_bytes": 1 << 30,
                   "max_message_bytes": 1024}),
        ),
    ];
    for (path, body) in declares {
        let (status, answer) = server.put(path, admin, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
    for body in [
        json!({"source": "orders", "destination": "jobs", "weight": 3}),
        json!({"source": "picky", "destination": "plain",
               "headers": {"kind": "a", "n": 2, "flag": true}, "match": "any"}),
        json!({"source": "dlx", "destination_type": "exchange", "destination": "orders"}),
    ] {
        let (status, answer) = server.post("/v1/bindings", admin, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}: {answer}");
    }
}

/// The feed once it has caught up with `version`, as the broker receives it.
async fn feed_at_least(server: &TestServer, version: i64) -> Value {
    let started = Instant::now();
    loop {
        let (status, feed) = server
            .get("/internal/v1/feed?since=-1&wait_ms=0", server.node_key())
            .await;
        assert_eq!(status, StatusCode::OK, "{feed}");
        if feed["version"].as_i64() >= Some(version) {
            return feed;
        }
        assert!(started.elapsed() < DEADLINE, "feed stuck at {feed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_feed_reads_back_as_the_broker_reads_it_without_loss() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    server.create_key(&admin, &["publish", "consume"]).await;
    declare_everything(&server, &admin).await;

    // Registered the way the broker does, from the protocol type.
    let register = RegisterNode {
        data_url: "http://n1.invalid:9090".into(),
        zone: "z1".into(),
        max_groups: Some(1_000),
        disk_reserve_bytes: 1 << 20,
    };
    let (status, node) = server
        .put(
            "/internal/v1/nodes/n1",
            server.node_key(),
            serde_json::to_value(&register).expect("json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{node}");

    let (_, jobs) = server.get("/v1/queues/jobs", &admin).await;
    let wire = feed_at_least(&server, jobs["topology_version"].as_i64().unwrap_or(0)).await;
    let bytes = serde_json::to_vec(&wire).expect("bytes");
    let snapshot = FeedSnapshot::from_json(&bytes).unwrap_or_else(|e| panic!("{e}: {wire}"));
    assert_eq!(
        serde_json::to_value(&snapshot).expect("json"),
        wire,
        "the broker's reading of the feed writes back something else"
    );

    // Typed all the way: the queue the broker runs is the one declared.
    let queue = snapshot
        .queues
        .iter()
        .find(|q| q.name == "jobs")
        .expect("jobs in the feed");
    let declared: QueueSettings = serde_json::from_value(jobs.clone()).expect("settings");
    assert_eq!(queue.spec, declared);
    assert_eq!(queue.spec.overflow, Overflow::DeadLetter);
    assert_eq!(queue.placement.replicas, ["n1"], "placed on the new node");
    assert_eq!(snapshot.streams[0].spec.partitions, 2);
    assert_eq!(snapshot.streams[0].partitions.len(), 2);
    assert_eq!(snapshot.bindings.len(), 3);
    assert_eq!(snapshot.api_keys.len(), 2, "the admin key and the new one");
    assert_eq!(snapshot.nodes[0].zone, "z1");
    assert_eq!(snapshot.tenants[0].quotas.max_queues, 10);
}

#[tokio::test]
async fn heartbeats_built_by_brokers_are_accepted_and_answered_in_the_protocol() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let feed = feed_at_least(&server, 1).await;
    let tenant_id = feed["tenants"][0]["id"].as_i64().expect("tenant id");
    let register = RegisterNode {
        data_url: "http://n1.invalid:9090".into(),
        zone: "default".into(),
        max_groups: None,
        disk_reserve_bytes: 0,
    };
    let (status, _) = server
        .put(
            "/internal/v1/nodes/n1",
            server.node_key(),
            serde_json::to_value(&register).expect("json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let beat = Heartbeat {
        applied_version: feed["version"].as_i64().unwrap_or(0),
        storage_bytes: BTreeMap::from([(tenant_id, 4096)]),
        disk_free_bytes: Some(1 << 30),
    };
    let (status, answer) = server
        .post(
            "/internal/v1/nodes/n1/heartbeat",
            server.node_key(),
            serde_json::to_value(&beat).expect("json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let ack: HeartbeatAck = serde_json::from_value(answer.clone()).expect("the broker reads it");
    assert_eq!(serde_json::to_value(&ack).expect("json"), answer);
    assert_eq!(ack.live_nodes, Some(1));
    assert_eq!(ack.storage_used, Some(BTreeMap::from([(tenant_id, 4096)])));
    let (status, _) = server.get("/v1/queues", &admin).await;
    assert_eq!(status, StatusCode::OK);
}

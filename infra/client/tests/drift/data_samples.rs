//! One value of each data-plane wire type with every field set, paired
//! with the name of its schema (see `control_samples.rs`).

use std::borrow::Cow;

use serde_json::Value;
use sluice_client::data::*;

use crate::control_samples::{map, partitions, v};

fn outgoing() -> OutgoingMessage<'static> {
    OutgoingMessage {
        body: Cow::Borrowed("aGk="),
        body_encoding: BodyEncoding::Base64,
        message_id: Some("m1".into()),
        headers: map("v".to_string()),
        routing_key: "usa.new".into(),
        group: Some("order-1".into()),
        delay_ms: Some(1),
        expiration_ms: Some(1),
        content_type: Some("text/plain".into()),
        priority: Some(9),
    }
}

fn received() -> ReceivedMessage {
    ReceivedMessage {
        receipt: "r".into(),
        body: "b".into(),
        body_encoding: BodyEncoding::Utf8,
        content_type: Some("text/plain".into()),
        message_id: Some("m".into()),
        headers: map("v".to_string()),
        routing_key: "k".into(),
        group: Some("g".into()),
        priority: Some(1),
        redelivered: true,
        delivery_count: 2,
        lease_deadline_ms: 1,
        published_at_ms: 1,
    }
}

pub fn all() -> Vec<(&'static str, Value)> {
    let member = |id: &str| GroupMember {
        member_id: id.into(),
        client_id: "c".into(),
        assignment: vec![0],
        revoked: vec![1],
    };
    vec![
        v(
            "QueuePublishRequest",
            QueuePublishRequest {
                messages: vec![outgoing()],
            },
        ),
        v(
            "QueuePublishResponse",
            QueuePublishResponse {
                results: vec![PublishOutcome {
                    status: "failed".into(),
                    queues: 0,
                    reason: Some("reject-publish".into()),
                }],
            },
        ),
        v(
            "ExchangePublishRequest",
            ExchangePublishRequest {
                messages: vec![outgoing()],
                mandatory: Some(true),
            },
        ),
        v(
            "ExchangePublishResponse",
            ExchangePublishResponse {
                results: vec![RoutedOutcome {
                    status: "failed".into(),
                    routed: 1,
                    unroutable: false,
                    returned: false,
                    queues: vec!["a".into()],
                    duplicate: vec!["a".into()],
                    failed: vec![FailedQueue {
                        queue: "b".into(),
                        error: "quota".into(),
                        reason: Some("reject-publish".into()),
                    }],
                }],
            },
        ),
        v(
            "ReceiveRequest",
            ReceiveRequest {
                max_messages: Some(10),
                wait_ms: Some(1),
                lease_ms: Some(1),
                consumer: Some("c".into()),
            },
        ),
        v(
            "ReceiveResponse",
            ReceiveResponse {
                messages: vec![received()],
            },
        ),
        v("AckRequest", AckRequest::new(vec!["r".to_string()])),
        v(
            "AckResponse",
            AckResponse {
                results: vec![AckResult {
                    receipt: "r".into(),
                    status: "error".into(),
                    error: Some("stale".into()),
                    detail: Some("gone".into()),
                }],
            },
        ),
        v(
            "NackRequest",
            NackRequest {
                receipt: "r".into(),
                action: Some(NackKind::RequeueAfter),
                delay_ms: Some(1),
            },
        ),
        v(
            "NackResponse",
            NackResponse {
                receipt: "r".into(),
                outcome: "requeued".into(),
                due_ms: Some(1),
            },
        ),
        v(
            "ExtendRequest",
            ExtendRequest {
                receipt: "r".into(),
                lease_ms: 1,
            },
        ),
        v(
            "ExtendResponse",
            ExtendResponse {
                receipt: "r".into(),
                lease_deadline_ms: 1,
            },
        ),
        v(
            "PeekResponse",
            PeekResponse {
                messages: vec![PeekedMessage {
                    body: "b".into(),
                    body_encoding: BodyEncoding::Utf8,
                    content_type: Some("text/plain".into()),
                    message_id: Some("m".into()),
                    headers: map("v".to_string()),
                    routing_key: "k".into(),
                    group: Some("g".into()),
                    priority: Some(1),
                    delivery_count: 1,
                    published_at_ms: 1,
                }],
            },
        ),
        v("PurgeResponse", PurgeResponse { purged: 1 }),
        v(
            "QueueStatsResponse",
            QueueStatsResponse {
                queue: "q".into(),
                ready: 1,
                unacked: 1,
                delayed: 1,
                ready_bytes: 1,
                outbox: 1,
                consumers: map(1),
                rates: Rates {
                    publish: 0.5,
                    deliver: 0.5,
                    ack: 0.5,
                    redeliver: 0.5,
                    dead_letter: 0.5,
                },
                dead_letters_dropped: 1,
                active_consumer: Some("c".into()),
            },
        ),
        v(
            "RedriveRequest",
            RedriveRequest {
                max_messages: 10,
                to_exchange: Some("x".into()),
                to_queue: Some("q".into()),
            },
        ),
        v(
            "RedriveResponse",
            RedriveResponse {
                redriven: 1,
                failed: 1,
                messages: vec![RedrivenMessage {
                    message_id: Some("m".into()),
                    status: "redriven".into(),
                    queues: Some(vec!["q".into()]),
                    detail: Some("d".into()),
                }],
            },
        ),
        v(
            "WhoAmI",
            WhoAmI {
                tenant: "acme".into(),
                key_id: "abc".into(),
                scopes: vec!["publish".into()],
                node_id: "n1".into(),
                topology_version: 1,
            },
        ),
        v(
            "ProduceRequest",
            ProduceRequest {
                records: vec![ProduceRecord {
                    key: Some("k".into()),
                    value: "aGk=".into(),
                    value_encoding: BodyEncoding::Base64,
                    headers: map("v".to_string()),
                    timestamp: Some(1),
                    partition: Some(0),
                }],
                producer: Some(ProducerHeader {
                    id: 7,
                    epoch: 1,
                    sequence: Some(0),
                    sequences: partitions(0),
                }),
            },
        ),
        v(
            "ProduceResponse",
            ProduceResponse {
                records: vec![ProducedRecord {
                    partition: 0,
                    offset: 1,
                }],
                duplicate: true,
                duplicate_partitions: vec![0],
            },
        ),
        v(
            "AllocatedProducer",
            AllocatedProducer {
                producer_id: 7,
                epoch: 0,
            },
        ),
        v(
            "FetchResponse",
            FetchResponse {
                records: vec![FetchedRecord {
                    offset: 1,
                    key: Some("k".into()),
                    value: "v".into(),
                    value_encoding: BodyEncoding::Utf8,
                    headers: map("v".to_string()),
                    timestamp: 1,
                }],
                next_offset: 2,
                high_watermark: 2,
                earliest_offset: 0,
            },
        ),
        v(
            "JoinRequest",
            JoinRequest {
                member_id: Some("m".into()),
                client_id: Some("c".into()),
                session_timeout_ms: Some(1),
                strategy: Some(AssignmentStrategy::RoundRobin),
            },
        ),
        v(
            "JoinResponse",
            JoinResponse {
                member_id: "m".into(),
                generation: 1,
                assignment: vec![0],
                revoked: vec![1],
                rebalance_in_progress: true,
                committed: partitions(3),
            },
        ),
        v(
            "HeartbeatRequest",
            HeartbeatRequest {
                member_id: "m".into(),
                generation: 1,
            },
        ),
        v(
            "HeartbeatResponse",
            HeartbeatResponse {
                generation: 1,
                assignment: vec![0],
                revoked: vec![1],
                rebalance_in_progress: false,
                committed: partitions(3),
            },
        ),
        v(
            "CommitRequest",
            CommitRequest {
                member_id: "m".into(),
                generation: 1,
                offsets: partitions(3),
            },
        ),
        v(
            "LeaveRequest",
            LeaveRequest {
                member_id: "m".into(),
            },
        ),
        v("GenerationResponse", GenerationResponse { generation: 1 }),
        v(
            "SeekRequest",
            SeekRequest {
                to: SeekTo::Timestamp,
                offsets: partitions(3),
                timestamp_ms: Some(1),
                force: Some(true),
            },
        ),
        v(
            "SeekResponse",
            SeekResponse {
                generation: 1,
                offsets: partitions(3),
            },
        ),
        v(
            "GroupDescription",
            GroupDescription {
                generation: 1,
                rebalance_in_progress: false,
                strategy: "range".into(),
                members: vec![member("m1")],
                partitions: vec![PartitionLag {
                    partition: 0,
                    committed: Some(1),
                    earliest_offset: 0,
                    high_watermark: 2,
                    lag: 1,
                }],
            },
        ),
    ]
}

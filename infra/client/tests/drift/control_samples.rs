//! One value of each control-plane wire type with every field set (struct
//! literals without `..`, so a field added to a type must be filled in
//! here), paired with the name of its schema. Nested types are checked
//! through their parents.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use sluice_client::control::*;

pub fn v<T: Serialize>(name: &'static str, value: T) -> (&'static str, Value) {
    (
        name,
        serde_json::to_value(value).expect("client types serialise"),
    )
}

pub fn map<V: Clone>(value: V) -> BTreeMap<String, V> {
    BTreeMap::from([("k".to_string(), value)])
}

pub fn partitions(value: u64) -> BTreeMap<u32, u64> {
    BTreeMap::from([(0, value), (1, value)])
}

const AT: &str = "2024-01-01T00:00:00Z";

fn api_key() -> ApiKey {
    ApiKey {
        id: "abc".into(),
        name: "app".into(),
        scopes: vec![Scope::Publish],
        status: KeyStatus::Active,
        created_by: "operator".into(),
        created_at: AT.into(),
        expires_at: Some(AT.into()),
        revoked_at: Some(AT.into()),
        last_used_at: Some(AT.into()),
    }
}

fn tenant() -> Tenant {
    Tenant {
        name: "acme".into(),
        plan: Plan::Free,
        status: TenantStatus::Active,
        created_at: AT.into(),
    }
}

fn quotas() -> Quotas {
    Quotas {
        max_queues: 1,
        max_exchanges: 1,
        max_bindings: 1,
        max_streams: 1,
        max_partitions: 1,
        max_api_keys: 1,
        max_message_bytes: 1,
        publish_messages_per_second: 1,
        publish_bytes_per_second: 1,
        max_storage_bytes: 1,
    }
}

fn exchange_spec() -> ExchangeSpec {
    ExchangeSpec {
        kind: ExchangeType::ConsistentHash,
        durable: Some(true),
        internal: Some(false),
        alternate_exchange: Some("ae".into()),
        hash_header: Some("order".into()),
    }
}

fn queue_spec() -> QueueSpec {
    QueueSpec {
        message_ttl_ms: Some(1),
        max_length: Some(1),
        max_length_bytes: Some(1),
        overflow: Some(Overflow::RejectPublish),
        dead_letter_exchange: Some("dlx".into()),
        dead_letter_routing_key: Some("dead".into()),
        delivery_limit: Some(3),
        retry: Some(RetryBackoff {
            initial_delay_ms: 1,
            multiplier: Some(2.5),
            max_delay_ms: 10,
        }),
        dedup_window_ms: Some(1),
        replication_factor: Some(1),
        single_active_consumer: Some(true),
        message_groups: Some(true),
        lease_ms: Some(1),
    }
}

fn binding_spec() -> BindingSpec {
    BindingSpec {
        source: "orders".into(),
        destination_type: Some(DestinationType::Queue),
        destination: "q".into(),
        routing_key: Some("usa.#".into()),
        headers: map(json!(2)),
        header_match: Some(HeaderMatch::All),
        weight: Some(2),
    }
}

fn stream_spec() -> StreamSpec {
    StreamSpec {
        partitions: Some(4),
        replication_factor: Some(1),
        retention_ms: Some(1),
        retention_bytes: Some(1),
        local_retention_ms: Some(1),
        local_retention_bytes: Some(1),
        max_message_bytes: Some(1),
    }
}

fn queue() -> Queue {
    Queue {
        name: "q".into(),
        spec: queue_spec(),
        topology_version: 1,
        created_at: AT.into(),
        stats: Some(QueueStats {
            ready: 1,
            unacked: 1,
            delayed: 1,
            ready_bytes: 1,
            consumers: 1,
            rates: QueueRates {
                publish: 1.5,
                deliver: 1.5,
                ack: 1.5,
                redeliver: 1.5,
                dead_letter: 1.5,
            },
        }),
    }
}

pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        v(
            "CreateTenant",
            CreateTenant {
                name: "acme".into(),
                plan: Some(Plan::Enterprise),
            },
        ),
        v(
            "TenantCreated",
            TenantCreated {
                tenant: tenant(),
                admin_key: ApiKeyCreated {
                    api_key: api_key(),
                    key: "sk_abc_secret".into(),
                },
            },
        ),
        v(
            "Page_Tenant",
            Page {
                items: vec![tenant()],
                next: Some("acme".into()),
            },
        ),
        v(
            "CreateApiKey",
            CreateApiKey {
                name: "app".into(),
                scopes: vec![Scope::Admin, Scope::Consume],
                expires_at: Some(AT.into()),
            },
        ),
        v(
            "Page_ApiKey",
            Page {
                items: vec![api_key()],
                next: Some("abc".into()),
            },
        ),
        v(
            "Token",
            Token {
                token: "eyJ".into(),
                token_type: "Bearer".into(),
                expires_at: AT.into(),
                scopes: vec![Scope::Manage],
            },
        ),
        v(
            "QuotasPatch",
            QuotasPatch {
                max_queues: Some(1),
                max_exchanges: Some(1),
                max_bindings: Some(1),
                max_streams: Some(1),
                max_partitions: Some(1),
                max_api_keys: Some(1),
                max_message_bytes: Some(1),
                publish_messages_per_second: Some(1),
                publish_bytes_per_second: Some(1),
                max_storage_bytes: Some(1),
            },
        ),
        v(
            "QuotaReport",
            QuotaReport {
                tenant: "acme".into(),
                plan: Plan::Standard,
                limits: quotas(),
                usage: Usage {
                    queues: 1,
                    exchanges: 1,
                    bindings: 1,
                    streams: 1,
                    partitions: 1,
                    api_keys: 1,
                    storage_bytes: 1,
                },
            },
        ),
        v("ExchangeSpec", exchange_spec()),
        v(
            "Page_Exchange",
            Page {
                items: vec![Exchange {
                    name: "orders".into(),
                    spec: exchange_spec(),
                    topology_version: 1,
                    created_at: AT.into(),
                }],
                next: Some("orders".into()),
            },
        ),
        v("QueueSpec", queue_spec()),
        v("Queue", queue()),
        v(
            "Page_Queue",
            Page {
                items: vec![queue()],
                next: Some("q".into()),
            },
        ),
        v("BindingSpec", binding_spec()),
        v(
            "Page_Binding",
            Page {
                items: vec![Binding {
                    id: "b1".into(),
                    spec: binding_spec(),
                    topology_version: 1,
                    created_at: AT.into(),
                }],
                next: Some("b1".into()),
            },
        ),
        v("StreamSpec", stream_spec()),
        v(
            "Page_Stream",
            Page {
                items: vec![Stream {
                    name: "s".into(),
                    spec: stream_spec(),
                    topology_version: 1,
                    created_at: AT.into(),
                }],
                next: Some("s".into()),
            },
        ),
        v(
            "Deleted",
            Deleted {
                name: "q".into(),
                bindings_removed: 1,
                topology_version: 1,
            },
        ),
        v(
            "Node",
            Node {
                id: "n1".into(),
                data_url: "http://127.0.0.1:1".into(),
                zone: "a".into(),
                registered_at: AT.into(),
                last_heartbeat_at: AT.into(),
                applied_version: 1,
                hosted_groups: 3,
                max_groups: Some(100),
                disk_free_bytes: Some(1 << 30),
                disk_reserve_bytes: 1 << 20,
            },
        ),
        v(
            "TopologyStatus",
            TopologyStatus {
                version: 2,
                applied_version: Some(1),
                live_nodes: 1,
            },
        ),
        v(
            "Page_AuditEntry",
            Page {
                items: vec![AuditEntry {
                    id: 1,
                    tenant: Some("acme".into()),
                    actor: "operator".into(),
                    action: "tenant.create".into(),
                    resource: "acme".into(),
                    details: json!({"plan": "free"}),
                    at: AT.into(),
                }],
                next: Some("1".into()),
            },
        ),
    ]
}

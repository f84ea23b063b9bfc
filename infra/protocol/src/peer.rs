//! What brokers ask one another, and the control plane asks brokers, on
//! `/internal/v1/...` with the node key: storing a message the sender
//! republishes (a dead letter, a redrive) in a queue hosted on the receiver
//! ([`Republish`]), the bounds of a stream's partitions hosted on the
//! receiver ([`StreamBounds`], for consumer-group lag), and a queue group's
//! live counts ([`QueueStats`], for the control plane's queue reads).

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_queue::PublishMessage;
use sluice_stream::PartitionBounds;

/// How a body travels in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    #[default]
    Utf8,
    Base64,
}

impl BodyEncoding {
    /// The name as it travels (`utf8`, `base64`).
    pub fn as_str(self) -> &'static str {
        match self {
            BodyEncoding::Utf8 => "utf8",
            BodyEncoding::Base64 => "base64",
        }
    }
}

/// What `POST /internal/v1/tenants/{tenant_id}/queues/{queue}/republish`
/// carries: the message as the state machine takes it, and its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Republish {
    pub message: PublishMessage,
    /// Base64 of the body's bytes.
    pub body: String,
    pub body_encoding: BodyEncoding,
    pub content_type: Option<String>,
}

impl Republish {
    pub fn new(
        message: PublishMessage,
        body: &[u8],
        body_encoding: BodyEncoding,
        content_type: Option<String>,
    ) -> Self {
        Republish {
            message,
            body: base64::engine::general_purpose::STANDARD.encode(body),
            body_encoding,
            content_type,
        }
    }

    /// The body's bytes, as sent.
    pub fn body_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(&self.body)
    }
}

/// What `GET /internal/v1/tenants/{tenant_id}/streams/{stream}/bounds`
/// answers: the bounds of the stream's partitions hosted on that broker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamBounds {
    #[serde(with = "bounds_map")]
    pub partitions: BTreeMap<u32, PartitionBounds>,
}

/// JSON object keys are strings: partition numbers written as such.
mod bounds_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use sluice_stream::PartitionBounds;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<u32, PartitionBounds>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let keyed: BTreeMap<String, &PartitionBounds> =
            map.iter().map(|(p, b)| (p.to_string(), b)).collect();
        keyed.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<u32, PartitionBounds>, D::Error> {
        let keyed = BTreeMap::<String, PartitionBounds>::deserialize(deserializer)?;
        keyed
            .into_iter()
            .map(|(p, b)| Ok((p.parse().map_err(serde::de::Error::custom)?, b)))
            .collect()
    }
}

/// A queue's live counts and rates, as its group's leader reports them.
// `GET /internal/v1/groups/{group_id}/stats` on the broker; the control plane
// shows it as a queue's `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    /// Messages waiting to be delivered.
    pub ready: u64,
    /// Delivered, waiting for ack (leased).
    pub unacked: u64,
    /// Waiting for their delay or retry backoff.
    pub delayed: u64,
    pub ready_bytes: u64,
    /// Consumers holding messages or registered with the queue.
    pub consumers: u64,
    /// Messages per second over the last 10 s.
    // Brokers from before rates answer without them: zeros.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub rates: QueueRates,
}

/// Messages per second over the last 10 s, as the hosting broker counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueRates {
    /// Messages stored.
    pub publish: f64,
    /// Deliveries, redeliveries included.
    pub deliver: f64,
    pub ack: f64,
    /// Deliveries of messages delivered before (nack requeue, lease expiry).
    pub redeliver: f64,
    /// Messages dead-lettered (or dropped without a dead-letter exchange).
    pub dead_letter: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_bounds_are_keyed_by_partition_number() {
        let bounds = StreamBounds {
            partitions: BTreeMap::from([(
                1,
                PartitionBounds {
                    earliest: 2,
                    end: 9,
                },
            )]),
        };
        let wire = serde_json::to_value(&bounds).expect("json");
        assert_eq!(
            wire,
            serde_json::json!({"partitions": {"1": {"earliest": 2, "end": 9}}})
        );
        let back: StreamBounds = serde_json::from_value(wire).expect("parse");
        assert_eq!(back, bounds);
    }

    #[test]
    fn a_republish_carries_the_body_byte_for_byte() {
        let message: PublishMessage = serde_json::from_value(serde_json::json!({
            "body_ref": {"log_index": 0, "slot": 1},
            "size": 3,
            "routing_key": "k",
            "priority": 7,
            "republished": true,
        }))
        .expect("message");
        let body = [0, 159, 255];
        let sent = Republish::new(
            message.clone(),
            &body,
            BodyEncoding::Base64,
            Some("application/octet-stream".into()),
        );
        let wire = serde_json::to_string(&sent).expect("json");
        let back: Republish = serde_json::from_str(&wire).expect("parse");
        assert_eq!(back, sent);
        assert_eq!(back.message, message);
        assert_eq!(back.body_bytes().expect("base64"), body);
        assert_eq!(back.body_encoding, BodyEncoding::Base64);
    }

    #[test]
    fn queue_stats_from_a_broker_without_rates_read_as_zero_rates() {
        let stats: QueueStats = serde_json::from_value(serde_json::json!({
            "ready": 1, "unacked": 2, "delayed": 3, "ready_bytes": 4, "consumers": 5
        }))
        .expect("stats");
        assert_eq!(stats.rates, QueueRates::default());
        let wire = serde_json::to_value(&stats).expect("json");
        assert_eq!(
            serde_json::from_value::<QueueStats>(wire).expect("read"),
            stats
        );
    }
}

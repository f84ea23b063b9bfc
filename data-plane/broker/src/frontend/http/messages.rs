//! The data API's message shapes: what a publisher sends, what a consumer
//! receives, and how each maps to the queue state machine's types.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sluice_queue::{BodyRef, Delivery, MessageView, PublishMessage, PublishResult};

use crate::error::{BrokerError, BrokerResult};
use crate::queue::publish::Prepared;
use crate::queue::{BodyEncoding, MessageBody};

/// Most messages in one publish request.
pub const MAX_BATCH: usize = 1000;

/// One message as a publisher sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutgoingMessage {
    pub body: String,
    #[serde(default)]
    pub body_encoding: BodyEncoding,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Routes the message through an exchange; published straight to a
    /// queue, an empty routing key becomes the queue's name (as with
    /// RabbitMQ's default exchange), which dead-letter routing may use.
    #[serde(default)]
    pub routing_key: String,
    /// Message group: a queue with `message_groups` delivers one message of
    /// a group at a time, in order. A queue without it keeps the group with
    /// the message but does not order by it — not an error, because one
    /// publish through an exchange may reach queues of both kinds, and a
    /// queue that enables `message_groups` later orders what it holds.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub expiration_ms: Option<u64>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// 0 to 255 (default 0): higher priorities are delivered first, FIFO
    /// within a priority; a message group keeps its own order.
    #[serde(default)]
    pub priority: Option<u8>,
}

/// Checks and decodes a publish batch against the tenant's message size quota.
pub fn prepare(
    messages: Vec<OutgoingMessage>,
    max_message_bytes: i64,
) -> BrokerResult<Vec<Prepared>> {
    if messages.is_empty() {
        return Err(BrokerError::validation(
            "messages",
            "min_items",
            "at least one message is required",
        ));
    }
    if messages.len() > MAX_BATCH {
        return Err(BrokerError::validation(
            "messages",
            "max_items",
            format!("at most {MAX_BATCH} messages per request"),
        ));
    }
    let limit = u64::try_from(max_message_bytes).unwrap_or(0);
    messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let metadata = super::message_limits::check_metadata(i, &message)?;
            let field = format!("messages[{i}].body");
            let bytes = match message.body_encoding {
                BodyEncoding::Utf8 => message.body.into_bytes(),
                BodyEncoding::Base64 => BASE64.decode(message.body.as_bytes()).map_err(|e| {
                    BrokerError::validation(&field, "base64", format!("not valid base64: {e}"))
                })?,
            };
            let size = bytes.len() as u64;
            let charged_bytes = size + metadata;
            if charged_bytes > limit {
                return Err(BrokerError::TooLarge {
                    field,
                    detail: format!(
                        "the message is {charged_bytes} bytes ({size} of body, {metadata} of headers, ids and keys); this tenant's max_message_bytes is {limit}"
                    ),
                });
            }
            Ok(Prepared {
                meta: PublishMessage {
                    message_id: message.message_id,
                    body_ref: BodyRef {
                        log_index: 0,
                        slot: 0,
                    },
                    size,
                    routing_key: message.routing_key,
                    headers: message.headers,
                    group: message.group,
                    delay_ms: message.delay_ms.filter(|d| *d > 0),
                    expiration_ms: message.expiration_ms,
                    priority: message.priority,
                    deaths: Vec::new(),
                    republished: false,
                },
                body: MessageBody {
                    bytes,
                    encoding: message.body_encoding,
                    content_type: message.content_type,
                },
                charged_bytes,
            })
        })
        .collect()
}

/// One message's publish outcome, as the publisher sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublishOutcome {
    /// `stored`, `duplicate` (same message id within the dedup window),
    /// `rejected` (queue full with `reject-publish`; see `reason`) or `dead_lettered`.
    pub status: &'static str,
    /// Queues that hold the message.
    pub queues: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&PublishResult> for PublishOutcome {
    fn from(result: &PublishResult) -> Self {
        let (status, queues, reason) = crate::queue::publish::outcome_of(result);
        PublishOutcome {
            status,
            queues,
            reason,
        }
    }
}

/// A body in JSON: as the publisher sent it when that is still possible.
fn encode_body(body: &MessageBody) -> (String, BodyEncoding) {
    if body.encoding == BodyEncoding::Utf8
        && let Ok(text) = std::str::from_utf8(&body.bytes)
    {
        return (text.to_string(), BodyEncoding::Utf8);
    }
    (BASE64.encode(&body.bytes), BodyEncoding::Base64)
}

/// One delivered message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceivedMessage {
    pub receipt: String,
    pub body: String,
    pub body_encoding: BodyEncoding,
    pub content_type: Option<String>,
    pub message_id: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub routing_key: String,
    pub group: Option<String>,
    pub priority: Option<u8>,
    pub redelivered: bool,
    pub delivery_count: u32,
    pub lease_deadline_ms: u64,
    pub published_at_ms: u64,
}

impl ReceivedMessage {
    /// `receipt` is the delivery's receipt, sealed (`crate::queue::receipts`).
    pub fn new(receipt: String, delivery: Delivery, body: &MessageBody) -> Self {
        let (text, encoding) = encode_body(body);
        ReceivedMessage {
            receipt,
            body: text,
            body_encoding: encoding,
            content_type: body.content_type.clone(),
            message_id: delivery.meta.message_id,
            headers: delivery.meta.headers,
            routing_key: delivery.meta.routing_key,
            group: delivery.meta.group,
            priority: delivery.meta.priority,
            redelivered: delivery.redelivered,
            delivery_count: delivery.delivery_count,
            lease_deadline_ms: delivery.lease_deadline_ms,
            published_at_ms: delivery.meta.published_at_ms,
        }
    }
}

/// One ready message shown by peek (not leased).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PeekedMessage {
    pub body: String,
    pub body_encoding: BodyEncoding,
    pub content_type: Option<String>,
    pub message_id: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub routing_key: String,
    pub group: Option<String>,
    pub priority: Option<u8>,
    pub delivery_count: u32,
    pub published_at_ms: u64,
}

impl PeekedMessage {
    pub fn new(view: MessageView, body: &MessageBody) -> Self {
        let (text, encoding) = encode_body(body);
        PeekedMessage {
            body: text,
            body_encoding: encoding,
            content_type: body.content_type.clone(),
            message_id: view.meta.message_id,
            headers: view.meta.headers,
            routing_key: view.meta.routing_key,
            group: view.meta.group,
            priority: view.meta.priority,
            delivery_count: view.delivery_count,
            published_at_ms: view.meta.published_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::publish::publish_command;
    use sluice_queue::Command;

    fn outgoing(body: &str, encoding: BodyEncoding) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            body_encoding: encoding,
            message_id: None,
            headers: BTreeMap::new(),
            routing_key: String::new(),
            group: None,
            delay_ms: None,
            expiration_ms: None,
            content_type: None,
            priority: None,
        }
    }

    #[test]
    fn bodies_are_decoded_checked_and_numbered_from_slot_one() {
        let prepared = prepare(
            vec![
                outgoing("hello", BodyEncoding::Utf8),
                outgoing("AAE=", BodyEncoding::Base64),
            ],
            16,
        )
        .unwrap();
        assert_eq!(prepared[1].body.bytes, vec![0, 1]);
        let (command, bodies) = publish_command(&prepared);
        let Command::Publish { messages } = command else {
            panic!("not a publish");
        };
        let slots: Vec<u32> = messages.iter().map(|m| m.body_ref.slot).collect();
        assert_eq!(slots, vec![1, 2]);
        assert_eq!(bodies.len(), 2);
        // Binary bodies go back out as base64.
        assert_eq!(
            encode_body(&bodies[1]),
            ("AAE=".to_string(), BodyEncoding::Base64)
        );
    }

    #[test]
    fn size_and_encoding_errors_name_the_body() {
        let err = prepare(
            vec![
                outgoing("x", BodyEncoding::Utf8),
                outgoing("toolong", BodyEncoding::Utf8),
            ],
            3,
        )
        .unwrap_err();
        assert!(
            matches!(err, BrokerError::TooLarge { ref field, .. } if field == "messages[1].body")
        );
        let err = prepare(vec![outgoing("***", BodyEncoding::Base64)], 3).unwrap_err();
        assert!(
            matches!(err, BrokerError::Validation { ref field, .. } if field == "messages[0].body")
        );
        assert!(prepare(Vec::new(), 3).is_err());
    }

    #[test]
    fn metadata_counts_against_the_size_limit_and_is_bounded() {
        let mut message = outgoing("abc", BodyEncoding::Utf8);
        message.headers.insert("k".into(), "vvvv".into());
        // 3 body + 1 + 4 header bytes = 8 > 7.
        let err = prepare(vec![message], 7).unwrap_err();
        assert!(matches!(err, BrokerError::TooLarge { .. }));

        type Mutation = Box<dyn Fn(&mut OutgoingMessage)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "messages[0].routing_key",
                Box::new(|m| m.routing_key = "r".repeat(256)),
            ),
            (
                "messages[0].message_id",
                Box::new(|m| m.message_id = Some(String::new())),
            ),
            (
                "messages[0].group",
                Box::new(|m| m.group = Some("g".repeat(257))),
            ),
            (
                "messages[0].content_type",
                Box::new(|m| m.content_type = Some("c".repeat(256))),
            ),
            (
                "messages[0].headers",
                Box::new(|m| {
                    m.headers = (0..65).map(|i| (format!("h{i}"), String::new())).collect();
                }),
            ),
            (
                "messages[0].headers",
                Box::new(|m| {
                    m.headers.insert(String::new(), "v".into());
                }),
            ),
            (
                "messages[0].delay_ms",
                Box::new(|m| m.delay_ms = Some(u64::from(u32::MAX) + 1)),
            ),
            (
                "messages[0].expiration_ms",
                Box::new(|m| m.expiration_ms = Some(u64::MAX)),
            ),
        ];
        for (expected, mutate) in cases {
            let mut message = outgoing("x", BodyEncoding::Utf8);
            mutate(&mut message);
            let err = prepare(vec![message], 1 << 20).unwrap_err();
            assert!(
                matches!(err, BrokerError::Validation { ref field, .. } if field == expected),
                "{expected}: {err:?}"
            );
        }
    }
}

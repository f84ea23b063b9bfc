//! Message shapes of the queue API: what a publisher sends (borrowing its
//! text, so a batch of one body sent many times is not copied per message)
//! and what receive, peek and push deliver.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// How a body (or a record value) travels in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// The text as it is.
    #[default]
    Utf8,
    /// Standard base64 of the bytes.
    Base64,
}

/// Text as it travels: `bytes` as UTF-8 text when they are, else base64.
pub fn encode_bytes(bytes: &[u8]) -> (Cow<'_, str>, BodyEncoding) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), BodyEncoding::Utf8),
        Err(_) => (
            Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes)),
            BodyEncoding::Base64,
        ),
    }
}

/// The bytes of a body or value received in `encoding`.
pub fn decode_bytes(
    text: &str,
    encoding: BodyEncoding,
) -> Result<Cow<'_, [u8]>, base64::DecodeError> {
    match encoding {
        BodyEncoding::Utf8 => Ok(Cow::Borrowed(text.as_bytes())),
        BodyEncoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Cow::Owned),
    }
}

/// One message to publish (to a queue or through an exchange).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutgoingMessage<'a> {
    pub body: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_utf8")]
    pub body_encoding: BodyEncoding,
    /// Deduplicated within a queue's `dedup_window_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub routing_key: Cow<'a, str>,
    /// Message group (queues with `message_groups`): one at a time per group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<Cow<'a, str>>,
    /// 0–9, higher first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

fn is_utf8(encoding: &BodyEncoding) -> bool {
    *encoding == BodyEncoding::Utf8
}

impl<'a> OutgoingMessage<'a> {
    /// A message with a text body and nothing else.
    pub fn text(body: impl Into<Cow<'a, str>>) -> OutgoingMessage<'a> {
        OutgoingMessage {
            body: body.into(),
            ..OutgoingMessage::default()
        }
    }

    /// A message with a byte body: as text when it is UTF-8, else base64.
    pub fn bytes(body: &'a [u8]) -> OutgoingMessage<'a> {
        let (body, body_encoding) = encode_bytes(body);
        OutgoingMessage {
            body,
            body_encoding,
            ..OutgoingMessage::default()
        }
    }

    pub fn routing_key(mut self, routing_key: impl Into<Cow<'a, str>>) -> Self {
        self.routing_key = routing_key.into();
        self
    }

    pub fn message_id(mut self, message_id: impl Into<Cow<'a, str>>) -> Self {
        self.message_id = Some(message_id.into());
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// A delivered message (`receive`, and each push `message` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    /// Acks, nacks or extends this delivery.
    pub receipt: String,
    pub body: String,
    pub body_encoding: BodyEncoding,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub priority: Option<u8>,
    pub redelivered: bool,
    pub delivery_count: u32,
    /// When the lease ends unless acked or extended (ms since the epoch).
    pub lease_deadline_ms: u64,
    pub published_at_ms: u64,
}

/// A message as `peek` shows it (not leased, so no receipt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeekedMessage {
    pub body: String,
    pub body_encoding: BodyEncoding,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub priority: Option<u8>,
    pub delivery_count: u32,
    pub published_at_ms: u64,
}

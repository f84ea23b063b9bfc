//! The payload of a message republished into a queue hosted on another
//! broker (a dead letter, a redrive): `POST
//! /internal/v1/tenants/{tenant_id}/queues/{queue}/republish` with the node key.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_queue::PublishMessage;

use super::{BodyEncoding, MessageBody};

/// What `POST /internal/v1/tenants/{tenant_id}/queues/{queue}/republish`
/// carries: the message as the state machine takes it, and its body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Republish {
    pub message: PublishMessage,
    /// Base64 of the body's bytes.
    pub body: String,
    pub body_encoding: BodyEncoding,
    pub content_type: Option<String>,
}

impl Republish {
    pub fn new(message: PublishMessage, body: &MessageBody) -> Self {
        Republish {
            message,
            body: base64::engine::general_purpose::STANDARD.encode(&body.bytes),
            body_encoding: body.encoding,
            content_type: body.content_type.clone(),
        }
    }

    /// The message and its body, as sent.
    pub fn into_parts(self) -> Result<(PublishMessage, MessageBody), base64::DecodeError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&self.body)?;
        let body = MessageBody {
            bytes,
            encoding: self.body_encoding,
            content_type: self.content_type,
        };
        Ok((self.message, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let body = MessageBody {
            bytes: vec![0, 159, 255],
            encoding: BodyEncoding::Base64,
            content_type: Some("application/octet-stream".into()),
        };
        let wire = serde_json::to_string(&Republish::new(message.clone(), &body)).expect("json");
        let back: Republish = serde_json::from_str(&wire).expect("parse");
        let (message_back, body_back) = back.into_parts().expect("base64");
        assert_eq!(message_back, message);
        assert_eq!(body_back, body);
    }
}

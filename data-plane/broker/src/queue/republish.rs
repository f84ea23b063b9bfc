//! The payload of a message republished into a queue hosted on another
//! broker (a dead letter, a redrive): `POST
//! /internal/v1/tenants/{tenant_id}/queues/{queue}/republish` with the node
//! key. The payload is `sluice-protocol`'s [`Republish`]; this module turns a
//! stored message body into one and back.

pub use sluice_protocol::peer::Republish;
use sluice_queue::PublishMessage;

use super::MessageBody;

/// What carries `message` and its `body` to the broker hosting the queue.
pub fn republish_of(message: PublishMessage, body: &MessageBody) -> Republish {
    Republish::new(
        message,
        &body.bytes,
        body.encoding,
        body.content_type.clone(),
    )
}

/// The message and its body, as sent.
pub fn parts_of(request: Republish) -> Result<(PublishMessage, MessageBody), base64::DecodeError> {
    let body = MessageBody {
        bytes: request.body_bytes()?,
        encoding: request.body_encoding,
        content_type: request.content_type,
    };
    Ok((request.message, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::BodyEncoding;

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
        let wire = serde_json::to_string(&republish_of(message.clone(), &body)).expect("json");
        let back: Republish = serde_json::from_str(&wire).expect("parse");
        let (message_back, body_back) = parts_of(back).expect("base64");
        assert_eq!(message_back, message);
        assert_eq!(body_back, body);
    }
}

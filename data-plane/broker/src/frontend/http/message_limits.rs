//! Limits on a published message's metadata. Headers, ids and keys live in
//! the queue's in-memory state and its snapshots (bodies stay in the log),
//! so each is bounded here and their bytes count, with the body, against
//! the tenant's message size, byte-rate and storage quotas.

use crate::error::{BrokerError, BrokerResult};

use super::messages::OutgoingMessage;

/// AMQP's short-string limit, kept for routing keys, header names and
/// content types so RabbitMQ clients' values fit unchanged.
pub const MAX_SHORT_STRING: usize = 255;
/// Longest message id (dedup key) or message group key, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most headers on one message.
pub const MAX_HEADERS: usize = 64;
/// Longest `delay_ms` / `expiration_ms`: RabbitMQ's limit for per-message
/// TTLs and delays (2^32 - 1 ms, about 49.7 days).
pub const MAX_TIME_MS: u64 = u32::MAX as u64;

/// Checks message `i`'s metadata; answers its size in bytes (everything but
/// the body) for the quotas.
pub fn check_metadata(i: usize, message: &OutgoingMessage) -> BrokerResult<u64> {
    let field = |name: &str| format!("messages[{i}].{name}");
    let bounded = |name: &str, value: &str, min: usize, max: usize| {
        if value.len() < min || value.len() > max {
            return Err(BrokerError::validation(
                field(name),
                "length",
                format!("must be {min} to {max} bytes; got {}", value.len()),
            ));
        }
        Ok(value.len() as u64)
    };
    let mut bytes = bounded("routing_key", &message.routing_key, 0, MAX_SHORT_STRING)?;
    if let Some(id) = &message.message_id {
        bytes += bounded("message_id", id, 1, MAX_ID_BYTES)?;
    }
    if let Some(group) = &message.group {
        bytes += bounded("group", group, 1, MAX_ID_BYTES)?;
    }
    if let Some(content_type) = &message.content_type {
        bytes += bounded("content_type", content_type, 1, MAX_SHORT_STRING)?;
    }
    if message.headers.len() > MAX_HEADERS {
        return Err(BrokerError::validation(
            field("headers"),
            "max_items",
            format!("at most {MAX_HEADERS} headers per message"),
        ));
    }
    for (name, value) in &message.headers {
        bytes += bounded("headers", name, 1, MAX_SHORT_STRING)?;
        bytes += value.len() as u64;
    }
    for (name, value) in [
        ("delay_ms", message.delay_ms),
        ("expiration_ms", message.expiration_ms),
    ] {
        if value.is_some_and(|ms| ms > MAX_TIME_MS) {
            return Err(BrokerError::validation(
                field(name),
                "range",
                format!("must be at most {MAX_TIME_MS} ms"),
            ));
        }
    }
    Ok(bytes)
}

//! Any broker serves any queue of the tenant: a request for a queue whose
//! group is hosted on another broker is forwarded there (the group's
//! preferred leader, first of its replicas) with the caller's credential,
//! and the answer — including a push consumer's event stream — is streamed
//! back. A forwarded request carries the node key in `x-sluice-forwarded-by`,
//! which proves it comes from a broker: it is never forwarded again, and
//! the publish it carries was already charged to the tenant's rate quota.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::BrokerState;
use crate::auth;
use crate::error::BrokerError;

pub const FORWARDED_BY: &str = "x-sluice-forwarded-by";

/// Largest request body forwarded (the publish limit is enforced by the target).
const MAX_FORWARD_BYTES: usize = 64 << 20;

/// Shared HTTP client for broker-to-broker calls.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

/// Whether the request was forwarded by a broker holding the node key.
pub fn forwarded_by_broker(state: &BrokerState, headers: &HeaderMap) -> bool {
    headers
        .get(FORWARDED_BY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|key| {
            bool::from(
                Sha256::digest(key.as_bytes())
                    .as_slice()
                    .ct_eq(&state.node_key_sha256),
            )
        })
}

/// Where a tenant's queue is served when not here: the data URL of the
/// first replica that is not this node, if the queue lives elsewhere.
pub fn remote_url(state: &BrokerState, tenant_id: i64, queue: &str) -> Option<String> {
    if state.groups.queue(tenant_id, queue).is_some() {
        return None;
    }
    let topology = state.topology.current();
    let placed = topology.queues.get(&(tenant_id, queue.to_string()))?;
    if placed.placement.replicas.contains(&state.node_id) {
        return None; // ours, still opening
    }
    let leader = placed.placement.replicas.first()?;
    topology.nodes.get(leader).cloned()
}

/// Middleware on `/v1/queues/{queue}/...`: forwards when the queue is hosted
/// elsewhere; otherwise (or when unsure) the local handler answers.
pub async fn queues(State(state): State<BrokerState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let Some(queue) = path
        .strip_prefix("/v1/queues/")
        .and_then(|rest| rest.split('/').next())
    else {
        return next.run(request).await;
    };
    if forwarded_by_broker(&state, request.headers()) {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let topology = state.topology.current();
    let Ok(caller) = auth::authenticate(&topology, &state.jwks, authorization).await else {
        return next.run(request).await; // the handler answers the auth problem
    };
    let Some(url) = remote_url(&state, caller.tenant_id, queue) else {
        return next.run(request).await;
    };
    let target = format!(
        "{url}{}",
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(&path)
    );
    match proxy(&state, request, &target).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn proxy(
    state: &BrokerState,
    request: Request,
    target: &str,
) -> Result<Response, BrokerError> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_FORWARD_BYTES)
        .await
        .map_err(|e| BrokerError::validation("body", "size", e.to_string()))?;
    let mut outgoing = state.forwarder.request(parts.method, target).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, value);
        }
    }
    outgoing = outgoing.header(FORWARDED_BY, state.node_key.as_str());
    let answer = outgoing.send().await.map_err(|e| {
        BrokerError::Unavailable(format!("the broker hosting this queue did not answer: {e}"))
    })?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::builder().status(status);
    for name in [
        header::CONTENT_TYPE,
        header::RETRY_AFTER,
        header::WWW_AUTHENTICATE,
        header::CACHE_CONTROL,
    ] {
        if let Some(value) = answer
            .headers()
            .get(name.as_str())
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            response = response.header(name, value);
        }
    }
    // Offsets and watermarks of a `format=batches` fetch.
    for (name, value) in answer.headers() {
        if name.as_str().starts_with("x-sluice-")
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            response = response.header(name.as_str(), value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .map_err(|e| BrokerError::Internal(e.into()))
}

/// Set (with the node key as proof) when the messages were already charged
/// to the tenant's rate quota by the broker that forwards them.
pub const CHARGED: &str = "x-sluice-charged";

/// Whether a forwarding broker already charged this publish.
pub fn already_charged(state: &BrokerState, headers: &HeaderMap) -> bool {
    headers.contains_key(CHARGED) && forwarded_by_broker(state, headers)
}

/// Publishes `messages` (already routed and charged here) to `queue` on the
/// broker at `url`, with the caller's credential; one `(queues, status)` per message.
pub async fn publish_remote(
    state: &BrokerState,
    url: &str,
    queue: &str,
    authorization: &str,
    messages: &[&super::messages::Prepared],
) -> Result<Vec<super::messages::QueueAnswer>, BrokerError> {
    use base64::Engine;
    let messages: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let text = (m.body.encoding == crate::queue::BodyEncoding::Utf8)
                .then(|| std::str::from_utf8(&m.body.bytes).ok())
                .flatten();
            let (body, encoding) = match text {
                Some(text) => (text.to_string(), "utf8"),
                None => (
                    base64::engine::general_purpose::STANDARD.encode(&m.body.bytes),
                    "base64",
                ),
            };
            serde_json::json!({
                "body": body,
                "body_encoding": encoding,
                "message_id": m.meta.message_id,
                "headers": m.meta.headers,
                "routing_key": m.meta.routing_key,
                "group": m.meta.group,
                "delay_ms": m.meta.delay_ms,
                "expiration_ms": m.meta.expiration_ms,
                "content_type": m.body.content_type,
                "priority": m.meta.priority,
            })
        })
        .collect();
    let answer = state
        .forwarder
        .post(format!("{url}/v1/queues/{queue}/messages"))
        .header(header::AUTHORIZATION, authorization)
        .header(FORWARDED_BY, state.node_key.as_str())
        .header(CHARGED, "1")
        .json(&serde_json::json!({ "messages": messages }))
        .send()
        .await
        .map_err(|e| {
            BrokerError::Unavailable(format!("the broker hosting `{queue}` did not answer: {e}"))
        })?;
    if !answer.status().is_success() {
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        return Err(BrokerError::Unavailable(format!(
            "the broker hosting `{queue}` answered {status}: {body}"
        )));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        results: Vec<super::messages::QueueAnswer>,
    }
    let answer: Answer = answer.json().await.map_err(|e| {
        BrokerError::Unavailable(format!(
            "the broker hosting `{queue}` answered garbage: {e}"
        ))
    })?;
    Ok(answer.results)
}

/// Where a stream request is served when not here: for a fetch, the node of
/// the partition's first replica (partition 0 for consumer groups); for a produce, the node of partition 0
/// when this broker hosts none of the stream's partitions.
pub fn remote_stream_url(
    state: &BrokerState,
    tenant_id: i64,
    stream: &str,
    partition: Option<u32>,
) -> Option<String> {
    let topology = state.topology.current();
    let placed = topology.streams.get(&(tenant_id, stream.to_string()))?;
    let placements: Vec<&crate::topology::Placement> = match partition {
        Some(p) => vec![placed.partitions.get(p as usize)?],
        None => placed.partitions.iter().collect(),
    };
    if placements
        .iter()
        .any(|p| p.replicas.contains(&state.node_id))
    {
        return None; // ours (or partly ours: the handler answers)
    }
    let leader = placements.first()?.replicas.first()?;
    topology.nodes.get(leader).cloned()
}

/// Middleware on `/v1/streams/{stream}/...`: forwards when the stream's
/// partition is hosted elsewhere; otherwise the local handler answers.
pub async fn streams(State(state): State<BrokerState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v1/streams/") else {
        return next.run(request).await;
    };
    let mut segments = rest.split('/');
    let Some(stream) = segments.next() else {
        return next.run(request).await;
    };
    let partition = match (segments.next(), segments.next()) {
        (Some("partitions"), Some(p)) => match p.parse::<u32>() {
            Ok(p) => Some(p),
            Err(_) => return next.run(request).await,
        },
        // Partition 0 coordinates the stream's consumer groups.
        (Some("groups"), _) => Some(0),
        _ => None,
    };
    if forwarded_by_broker(&state, request.headers()) {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let topology = state.topology.current();
    let Ok(caller) = auth::authenticate(&topology, &state.jwks, authorization).await else {
        return next.run(request).await;
    };
    let Some(url) = remote_stream_url(&state, caller.tenant_id, stream, partition) else {
        return next.run(request).await;
    };
    let target = format!(
        "{url}{}",
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(&path)
    );
    match proxy(&state, request, &target).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// A partition's bounds as its broker reports them.
pub struct RemotePosition {
    pub earliest: u64,
    pub end: u64,
    /// With a timestamp: the first offset at or after it (the end if none).
    pub at_timestamp: Option<u64>,
}

/// Asks the broker at `url` where `partition` of `stream` is: a JSON fetch
/// at `latest` (or at `timestamp_ms`) of at most one record.
pub async fn partition_position(
    state: &BrokerState,
    url: &str,
    stream: &str,
    partition: u32,
    authorization: &str,
    timestamp_ms: Option<i64>,
) -> Result<RemotePosition, BrokerError> {
    let from = match timestamp_ms {
        Some(ts) => format!("timestamp={ts}"),
        None => "offset=latest".to_string(),
    };
    let unavailable = |what: String| {
        BrokerError::Unavailable(format!(
            "the broker hosting partition {partition} of `{stream}` {what}"
        ))
    };
    let answer = state
        .forwarder
        .get(format!(
            "{url}/v1/streams/{stream}/partitions/{partition}/records?{from}&max_records=1"
        ))
        .header(header::AUTHORIZATION, authorization)
        .header(FORWARDED_BY, state.node_key.as_str())
        .send()
        .await
        .map_err(|e| unavailable(format!("did not answer: {e}")))?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(unavailable(format!("answered {status}: {body}")));
    }
    let (Some(earliest), Some(end)) = (
        body["earliest_offset"].as_u64(),
        body["high_watermark"].as_u64(),
    ) else {
        return Err(unavailable(format!("answered without bounds: {body}")));
    };
    let at_timestamp = timestamp_ms.map(|_| body["records"][0]["offset"].as_u64().unwrap_or(end));
    Ok(RemotePosition {
        earliest,
        end,
        at_timestamp,
    })
}

/// Produces `records` (already validated and charged here) to `partition`
/// of `stream` on the broker at `url`: their offsets and whether the batch
/// was an idempotent retry. Values travel base64-encoded, byte for byte.
pub async fn produce_remote(
    state: &BrokerState,
    url: &str,
    stream: &str,
    partition: u32,
    authorization: &str,
    records: &[sluice_storage::Record],
    producer: Option<sluice_stream::ProducerBatch>,
) -> Result<(Vec<u64>, bool), BrokerError> {
    use base64::Engine;
    let records_sent = records.len();
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let headers: std::collections::BTreeMap<&str, String> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            serde_json::json!({
                "key": r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "value": base64::engine::general_purpose::STANDARD.encode(&r.value),
                "value_encoding": "base64",
                "headers": headers,
                "timestamp": r.timestamp,
                "partition": partition,
            })
        })
        .collect();
    let mut body = serde_json::json!({ "records": records });
    if let Some(p) = producer {
        body["producer"] = serde_json::json!({
            "id": p.producer_id, "epoch": p.epoch, "sequence": p.base_sequence,
        });
    }
    let answer = state
        .forwarder
        .post(format!("{url}/v1/streams/{stream}/records"))
        .header(header::AUTHORIZATION, authorization)
        .header(FORWARDED_BY, state.node_key.as_str())
        .header(CHARGED, "1")
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            BrokerError::Unavailable(format!(
                "the broker hosting partition {partition} of `{stream}` did not answer: {e}"
            ))
        })?;
    let status = answer.status();
    let retry_after = answer.headers().get(header::RETRY_AFTER).cloned();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if status.as_u16() == 409 {
        let kind = body["type"].as_str().unwrap_or_default();
        let slug = ["duplicate-sequence", "producer-fenced"]
            .into_iter()
            .find(|slug| kind.ends_with(slug))
            .unwrap_or("out-of-order-sequence");
        return Err(BrokerError::ProducerSequence {
            slug,
            detail: body["detail"].as_str().unwrap_or_default().to_string(),
            expected_sequence: body["expected_sequence"].as_u64(),
        });
    }
    if !status.is_success() {
        return Err(remote_problem(
            status,
            retry_after,
            body,
            format!("the broker hosting partition {partition} of `{stream}`"),
        ));
    }
    let offsets = body["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter_map(|r| r["offset"].as_u64())
                .collect::<Vec<u64>>()
        })
        .unwrap_or_default();
    if offsets.len() != records_sent {
        return Err(BrokerError::Unavailable(format!(
            "the broker hosting partition {partition} of `{stream}` answered {} offsets for {records_sent} records",
            offsets.len()
        )));
    }
    Ok((offsets, body["duplicate"].as_bool().unwrap_or(false)))
}

/// The problem another broker answered, passed through to the caller with
/// its status and body (403 quota, 413 too large, 429 rate limited, ...).
/// Answers that are no problem document, and 5xx answers, become 503.
fn remote_problem(
    status: reqwest::StatusCode,
    retry_after: Option<reqwest::header::HeaderValue>,
    body: serde_json::Value,
    who: String,
) -> BrokerError {
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_server_error() || !body["type"].is_string() {
        return BrokerError::Unavailable(format!("{who} answered {status}: {body}"));
    }
    BrokerError::Remote {
        status,
        retry_after: retry_after.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_problem_keeps_its_status_and_body() {
        let body = serde_json::json!({"type": "https://sluice.dev/problems/quota-exceeded",
            "status": 403, "quota": "max_storage_bytes"});
        let err = remote_problem(
            reqwest::StatusCode::FORBIDDEN,
            None,
            body.clone(),
            "b".into(),
        );
        let BrokerError::Remote {
            status, body: got, ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((*status, got), (StatusCode::FORBIDDEN, &body));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let limited = remote_problem(
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            Some(reqwest::header::HeaderValue::from_static("3")),
            serde_json::json!({"type": "https://sluice.dev/problems/rate-limited"}),
            "b".into(),
        )
        .into_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "3");
        let garbage = remote_problem(
            reqwest::StatusCode::INTERNAL_SERVER_ERROR,
            None,
            serde_json::json!({"type": "x"}),
            "b".into(),
        );
        assert!(matches!(garbage, BrokerError::Unavailable(_)));
    }
}

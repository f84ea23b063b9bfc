//! Any broker serves any queue of the tenant: a request for a queue whose
//! group is hosted on another broker is forwarded there (the group's
//! preferred leader, first of its replicas) with the caller's credential,
//! and the answer — including a push consumer's event stream — is streamed
//! back. A forwarded request carries the node key in `x-sluice-forwarded-by`,
//! which proves it comes from a broker: it is never forwarded again, and
//! the publish it carries was already charged to the tenant's rate quota.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::admission::auth;
use crate::cluster::{FORWARDED_BY, placement};
use crate::error::BrokerError;
use crate::node::Node;

/// Largest request body forwarded (the publish limit is enforced by the target).
const MAX_FORWARD_BYTES: usize = 64 << 20;

/// Middleware on `/v1/queues/{queue}/...`: forwards when the queue is hosted
/// elsewhere; otherwise (or when unsure) the local handler answers.
pub async fn queues(State(state): State<Node>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let Some(queue) = path
        .strip_prefix("/v1/queues/")
        .and_then(|rest| rest.split('/').next())
    else {
        return next.run(request).await;
    };
    if state.node_key.forwarded(request.headers()) {
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
    let hosted_here = state.queues.queue(caller.tenant_id, queue).is_some();
    let Some(url) = placement::queue_host(&topology, &state.node_id, caller.tenant_id, queue)
        .filter(|_| !hosted_here)
    else {
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

async fn proxy(state: &Node, request: Request, target: &str) -> Result<Response, BrokerError> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_FORWARD_BYTES)
        .await
        .map_err(|e| BrokerError::validation("body", "size", e.to_string()))?;
    let mut outgoing = state.peers.http().request(parts.method, target).body(body);
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

/// Middleware on `/v1/streams/{stream}/...`: forwards when the stream's
/// partition is hosted elsewhere; otherwise the local handler answers.
pub async fn streams(State(state): State<Node>, request: Request, next: Next) -> Response {
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
    if state.node_key.forwarded(request.headers()) {
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
    let Some(url) = placement::stream_host(
        &topology,
        &state.node_id,
        caller.tenant_id,
        stream,
        partition,
    ) else {
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

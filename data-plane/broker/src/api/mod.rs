//! The broker's HTTP data API. Handlers authenticate with [`CallerAuth`]
//! against the topology the broker follows.
//!
//! - [`publish`]: publish to a queue or through an exchange.
//! - [`queues`]: receive, ack, nack, extend, peek, purge, stats.
//! - [`consume`]: push consumers (Server-Sent Events with a prefetch
//!   window), dispatched by [`dispatch`].
//! - [`redrive`]: moving messages out of a (dead-letter) queue again.
//! - [`messages`]: the message shapes on the wire.
//! - [`streams`]: produce to and fetch from stream partitions.
//! - [`stream_groups`]: consumer groups (join, heartbeat, leave, commit, seek, lag, delete).
//! - [`json`]: the JSON extractor whose errors name the field.

pub mod consume;
pub mod dispatch;
pub mod forward;
pub mod internal;
pub mod json;
pub mod message_limits;
pub mod messages;
pub mod openapi;
pub mod publish;
pub mod query;
pub mod queues;
pub mod receipts;
pub mod redrive;
pub mod stream_fetch;
pub mod stream_groups;
pub mod streams;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::trace::TraceLayer;

use crate::auth::{self, Caller, Jwks};
use crate::control::TopologyHandle;
use crate::error::{BrokerError, BrokerResult};
use crate::groups::Groups;
use crate::routers::Routers;

#[derive(Clone)]
pub struct BrokerState {
    pub topology: TopologyHandle,
    pub jwks: Arc<Jwks>,
    pub node_id: String,
    pub groups: Groups,
    /// The stream partitions hosted here.
    pub partitions: crate::stream_groups::Partitions,
    pub routers: Arc<Routers>,
    /// Per-tenant publish rate buckets.
    pub limits: Arc<crate::limits::PublishLimits>,
    /// The node key itself: brokers prove forwarded requests with it.
    pub node_key: Arc<String>,
    /// HTTP client for forwarding to the broker hosting a queue.
    pub forwarder: reqwest::Client,
    /// SHA-256 of the node key, for the control plane's calls to `/internal`.
    pub node_key_sha256: Arc<Vec<u8>>,
    /// The push dispatch task of every queue with push consumers.
    pub dispatchers: Arc<dispatch::Dispatchers>,
    /// Seals the receipts handed to consumers and opens those coming back.
    pub receipts: receipts::ReceiptSeal,
    /// Broker-to-broker calls without a client credential (republishing).
    pub peers: crate::peers::Peers,
}

/// The authenticated caller of a data request.
pub struct CallerAuth(pub Caller);

impl FromRequestParts<BrokerState> for CallerAuth {
    type Rejection = BrokerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &BrokerState,
    ) -> Result<Self, BrokerError> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let topology = state.topology.current();
        auth::authenticate(&topology, &state.jwks, authorization)
            .await
            .map(CallerAuth)
    }
}

pub fn router(state: BrokerState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::render))
        .route("/openapi.json", get(openapi::serve))
        .route("/v1/whoami", get(whoami))
        .route(
            "/v1/queues/{queue}/messages",
            post(publish::publish_to_queue),
        )
        .route(
            "/v1/exchanges/{exchange}/publish",
            post(publish::publish_to_exchange),
        )
        .route("/v1/queues/{queue}/receive", post(queues::receive))
        .route("/v1/queues/{queue}/ack", post(queues::ack))
        .route("/v1/queues/{queue}/nack", post(queues::nack))
        .route("/v1/queues/{queue}/extend", post(queues::extend))
        .route("/v1/queues/{queue}/peek", get(queues::peek))
        .route("/v1/queues/{queue}/purge", post(queues::purge))
        .route("/v1/queues/{queue}/stats", get(queues::stats))
        .route("/v1/queues/{queue}/consume", get(consume::consume))
        .route("/v1/queues/{queue}/redrive", post(redrive::redrive))
        .route("/v1/streams/{stream}/records", post(streams::produce))
        .route(
            "/v1/streams/{stream}/producers",
            post(streams::allocate_producer),
        )
        .route(
            "/v1/streams/{stream}/partitions/{partition}/records",
            get(stream_fetch::fetch),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}",
            get(stream_groups::describe).delete(stream_groups::delete),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/join",
            post(stream_groups::join),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/heartbeat",
            post(stream_groups::heartbeat),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/leave",
            post(stream_groups::leave),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/commit",
            post(stream_groups::commit),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/seek",
            post(stream_groups::seek),
        )
        .route(
            "/internal/v1/groups/{group_id}/stats",
            get(internal::group_stats),
        )
        .route(
            "/internal/v1/tenants/{tenant_id}/queues/{queue}/republish",
            post(internal::republish),
        )
        .route(
            "/internal/v1/tenants/{tenant_id}/streams/{stream}/bounds",
            get(internal::stream_bounds),
        )
        .fallback(|uri: Uri| async move {
            BrokerError::NotFound {
                kind: "route",
                name: uri.path().to_string(),
            }
        })
        .layer(DefaultBodyLimit::max(json::MAX_REQUEST_BYTES))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::queues,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::streams,
        ))
        .with_state(state)
}

/// Ready once the first topology snapshot is applied and the queue groups
/// and stream partitions converged to it: before that every credential would be refused and
/// hosted queues would answer 503.
async fn readyz(State(state): State<BrokerState>) -> BrokerResult<(StatusCode, String)> {
    if !state.topology.is_loaded() {
        return Err(BrokerError::Unavailable(
            "no topology from the control plane yet".into(),
        ));
    }
    if state.groups.version() < 0 {
        return Err(BrokerError::Unavailable(
            "queue groups are still opening".into(),
        ));
    }
    if state.partitions.version() < 0 {
        return Err(BrokerError::Unavailable(
            "stream partitions are still opening".into(),
        ));
    }
    Ok((
        StatusCode::OK,
        format!(
            "ready at topology version {}",
            state.topology.current().version
        ),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    tenant: String,
    key_id: String,
    scopes: Vec<String>,
    node_id: String,
    topology_version: i64,
}

/// Who the broker takes the caller for: a way to check a credential against a broker.
#[utoipa::path(get, path = "/v1/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), openapi::ProblemResponses),
    security(("bearer" = [])))]
pub async fn whoami(
    State(state): State<BrokerState>,
    CallerAuth(caller): CallerAuth,
) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant: caller.tenant,
        key_id: caller.key_id,
        scopes: caller.scopes,
        node_id: state.node_id.clone(),
        topology_version: state.topology.current().version,
    })
}

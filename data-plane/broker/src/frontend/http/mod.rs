//! The broker's HTTP front end: the data API of `openapi/data-plane.json`,
//! `/internal/v1` for the control plane and other brokers, and health.
//! Prometheus metrics are not here but on the operator's own listener
//! ([`scrape`]): they name every tenant hosted on the broker. Handlers are thin: they authenticate with [`CallerAuth`],
//! parse the wire shapes ([`messages`], [`json`], [`query`]), call the
//! node's rooms and render their answers; [`problem`] is the one place an
//! error becomes an HTTP status and problem document, [`proxy`] relays a
//! request for a group hosted on another broker.
//!
//! - [`publish`]: publish to a queue or through an exchange.
//! - [`queues`]: receive, ack, nack, extend, peek, purge, stats.
//! - [`consume`]: push consumers (Server-Sent Events with a prefetch
//!   window), dispatched by `crate::queue::dispatch`.
//! - [`redrive`]: moving messages out of a (dead-letter) queue again.
//! - [`messages`]: the message shapes on the wire.
//! - [`streams`]: produce to stream partitions; [`fetch`]: read them.
//! - [`consumer_groups`]: consumer groups (join, heartbeat, leave, commit, seek, lag, delete).
//! - [`internal`]: `/internal/v1`, authenticated with the node key.
//! - [`json`], [`query`]: extractors whose errors name the field.
//! - [`scrape`]: the separate `/metrics` listener (`metrics_listen`).

pub mod consume;
pub mod consumer_groups;
pub mod fetch;
pub mod health;
pub mod internal;
pub mod json;
pub mod lookup;
pub mod message_limits;
pub mod messages;
pub mod openapi;
pub mod problem;
pub mod proxy;
pub mod publish;
pub mod query;
pub mod queues;
pub mod redrive;
pub mod scrape;
pub mod streams;

use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use sluice_protocol::http_server;
use sluice_protocol::routes::{self, Plane};
use tower_http::trace::TraceLayer;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::auth::{self, Caller};
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;

/// The authenticated caller of a data request.
pub struct CallerAuth(pub Caller);

impl FromRequestParts<Node> for CallerAuth {
    type Rejection = BrokerError;

    async fn from_request_parts(parts: &mut Parts, state: &Node) -> Result<Self, BrokerError> {
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

pub fn router(state: Node) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
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
            get(fetch::fetch),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}",
            get(consumer_groups::describe).delete(consumer_groups::delete),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/join",
            post(consumer_groups::join),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/heartbeat",
            post(consumer_groups::heartbeat),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/leave",
            post(consumer_groups::leave),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/commit",
            post(consumer_groups::commit),
        )
        .route(
            "/v1/streams/{stream}/groups/{group}/seek",
            post(consumer_groups::seek),
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
        .fallback(|method: Method, uri: Uri| async move {
            BrokerError::UnknownRoute(routes::unknown_route_detail(
                Plane::Data,
                method.as_str(),
                uri.path(),
            ))
        })
        .layer(DefaultBodyLimit::max(json::MAX_REQUEST_BYTES))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            proxy::queues,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            proxy::streams,
        ))
        .layer(axum::middleware::map_response(
            problem::framework_errors_as_problems,
        ))
        // Outermost: a head over the limits is refused before anything reads it.
        .layer(axum::middleware::from_fn(http_server::head_limits))
        .with_state(state)
}

/// Serves the HTTP front end of `node` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    node: Node,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    http_server::serve(
        listener,
        router(node),
        async move { shutdown.cancelled().await },
    )
    .await?;
    Ok(())
}

/// Ready once the first topology snapshot is applied and the queue groups
/// and stream partitions converged to it: before that every credential would be refused and
/// hosted queues would answer 503.
async fn readyz(State(state): State<Node>) -> BrokerResult<(StatusCode, String)> {
    if let Some(reason) = state.not_ready() {
        return Err(BrokerError::Unavailable(reason.into()));
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
    responses((status = 200, body = WhoAmI), problem::ProblemResponses),
    security(("bearer" = [])))]
pub async fn whoami(State(state): State<Node>, CallerAuth(caller): CallerAuth) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant: caller.tenant,
        key_id: caller.key_id,
        scopes: caller.scopes,
        node_id: state.node_id.clone(),
        topology_version: state.topology.current().version,
    })
}

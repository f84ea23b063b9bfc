//! `sluice-control`, the control plane: tenants, API keys, quotas and the
//! topology (exchanges, queues, bindings, streams) stored in Postgres and
//! served as a REST API described by OpenAPI.
//!
//! Layout: `api/` handlers (one module per resource), `model/` the resource
//! shapes and their validation, `db/` Postgres access, `auth/` credentials,
//! `error` the one table from errors to RFC 7807 problems.

pub mod api;
pub mod auth;
pub mod brokers;
pub mod config;
#[macro_use]
pub mod db;
pub mod error;
pub mod extract;
pub mod feed;
pub mod metrics;
pub mod model;
pub mod names;
pub mod placement;
pub mod state;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::get;
use sluice_protocol::http_server;
use sluice_protocol::routes::{self, Plane};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::auth::api_key;
use crate::auth::jwt::Signer;
use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to or migrate the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot load the token signing keys: {0}")]
    Signer(#[from] auth::jwt::SignerError),
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the broker client: {0}")]
    BrokerClient(#[from] reqwest::Error),
}

/// Connects to Postgres, migrates, and builds the shared state.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let pool = db::connect(&config.database_url, config.db_max_connections).await?;
    let signer = Signer::load_or_create(&pool).await?;
    let operator_key_hash = config.operator_key.as_deref().map(api_key::hash_secret);
    let node_key_hash = config.node_key.as_deref().map(api_key::hash_secret);
    let versions = feed::VersionWatch::start(pool.clone()).await?;
    let applied = feed::AppliedWatch::start(pool.clone());
    let brokers = brokers::BrokerClient::new(config.node_key.clone())?;
    Ok(AppState {
        pool,
        signer: Arc::new(signer),
        config: Arc::new(config),
        operator_key_hash,
        node_key_hash,
        versions,
        applied,
        brokers,
        shutdown: tokio_util::sync::CancellationToken::new(),
    })
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api::router();
    let doc = Arc::new(doc);
    let max_body = state.config.max_body_bytes;
    api.route("/metrics", get(metrics::render))
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::UnknownRoute(routes::unknown_route_detail(
                Plane::Control,
                method.as_str(),
                uri.path(),
            ))
        })
        .layer(axum::middleware::map_response(
            error::framework_errors_as_problems,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
        // Outermost: a head over the limits is refused before anything reads it.
        .layer(axum::middleware::from_fn(http_server::head_limits))
        .with_state(state)
}

/// Serves until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    metrics::handle();
    let stopping = state.shutdown.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    http_server::serve(listener, app(state), shutdown).await?;
    Ok(())
}

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
use axum::routing::get;
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
        .fallback(|uri: axum::http::Uri| async move { ApiError::not_found("route", uri.path()) })
        .layer(axum::middleware::map_response(
            error::framework_errors_as_problems,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
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
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

//! The operator's scrape listener: `/metrics` and `/healthz` (what is
//! failing, [`super::health`]) on an address
//! of their own (`metrics_listen`), never on the data port. The series name
//! every tenant, queue and stream hosted on the broker, so only the
//! operator's scrape network may read them; tenants read their own numbers
//! through the API (`/v1/queues/{q}/stats`, consumer-group lag).

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::BrokerError;
use crate::node::Node;

pub fn router(state: Node) -> Router {
    Router::new()
        .route("/healthz", get(super::health::health))
        .route("/metrics", get(metrics))
        // The same problem document as the data port's unknown routes.
        .fallback(|uri: Uri| async move {
            BrokerError::NotFound {
                kind: "route",
                name: uri.path().to_string(),
            }
        })
        .with_state(state)
}

/// Serves the scrape listener of `node` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    node: Node,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    sluice_protocol::http_server::serve(listener, router(node), async move {
        shutdown.cancelled().await
    })
    .await?;
    Ok(())
}

/// `GET /metrics`
async fn metrics(State(state): State<Node>) -> String {
    crate::metrics::render(&state).await
}
